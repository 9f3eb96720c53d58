import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A raw TCP connection to a loopback port: how the slow-client tests send
/// half a request and watch whether the server closes it.
final class RawConnection: Sendable {
    let fd: Int32

    /// `receiveBuffer`: a small receive buffer (set before connecting), for a client that reads slowly or never.
    /// `source`: another loopback address to connect from (Linux answers all of 127.0.0.0/8), to be
    /// another host as the server sees it.
    init(port: Int, receiveBuffer: Int32? = nil, source: String? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard bound == 0 else { throw CocoaError(.fileReadUnknown) }
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard fd >= 0, connected == 0 else { throw CocoaError(.fileReadUnknown) }
    }

    deinit { close(fd) }

    /// Sends bytes; false once the server has closed the connection.
    @discardableResult
    func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        #if canImport(Glibc)
            return bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                == bytes.count
        #else
            return bytes.withUnsafeBytes { Darwin.send(fd, $0.baseAddress, $0.count, 0) } == bytes.count
        #endif
    }

    /// How many of `total` bytes of filler the kernel takes within `seconds`: as many as the server
    /// reads, plus what the two sockets' buffers hold (polled off the cooperative pool).
    func sendWhileAccepted(total: Int, within seconds: Double) async throws -> Int {
        try await offPool {
            let deadline = Date().addingTimeInterval(seconds)
            let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 65_536)
            var sent = 0
            while sent < total, Date() < deadline {
                var poller = pollfd(fd: self.fd, events: Int16(POLLOUT), revents: 0)
                guard poll(&poller, 1, 100) > 0 else { continue }
                #if canImport(Glibc)
                    let count = chunk.withUnsafeBytes {
                        Glibc.send(self.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                    }
                #else
                    let count = chunk.withUnsafeBytes { Darwin.send(self.fd, $0.baseAddress, $0.count, MSG_DONTWAIT) }
                #endif
                if count < 0 && errno != EAGAIN { break }
                sent += max(0, count)
            }
            return sent
        }
    }

    /// Half-closes: the server reads end of stream after what was sent.
    func finishSending() {
        shutdown(fd, Int32(SHUT_WR))
    }

    /// Everything the server sends until it closes or `seconds` pass (polled off the cooperative pool).
    func readAll(within seconds: Double) async throws -> String {
        try await offPool { self.readAllBlocking(within: seconds) }
    }

    private func readAllBlocking(within seconds: Double) -> String {
        let deadline = Date().addingTimeInterval(seconds)
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(max(1, deadline.timeIntervalSinceNow * 1000))) > 0 else { continue }
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { break }
            received += buffer[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// What the server sends until `marker` has arrived, it closes, or `seconds` pass: one answer
    /// on a connection that stays open, without waiting out the deadline.
    func read(until marker: String, within seconds: Double) async throws -> String {
        try await offPool {
            let deadline = Date().addingTimeInterval(seconds)
            var received: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while Date() < deadline, String(decoding: received, as: UTF8.self).range(of: marker) == nil {
                var poller = pollfd(fd: self.fd, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, Int32(max(1, deadline.timeIntervalSinceNow * 1000))) > 0 else { continue }
                let count = recv(self.fd, &buffer, buffer.count, 0)
                if count <= 0 { break }
                received += buffer[0..<count]
            }
            return String(decoding: received, as: UTF8.self)
        }
    }

    /// How many bytes the server sends until it closes or `seconds` pass, counted, not kept.
    func countAll(within seconds: Double) async throws -> Int {
        try await offPool {
            let deadline = Date().addingTimeInterval(seconds)
            var total = 0
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while Date() < deadline {
                var poller = pollfd(fd: self.fd, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, Int32(max(1, deadline.timeIntervalSinceNow * 1000))) > 0 else { continue }
                let count = recv(self.fd, &buffer, buffer.count, 0)
                if count <= 0 { break }
                total += count
            }
            return total
        }
    }

    /// Whether the server closed the connection within `seconds` (reads past any answer), polled off the pool.
    func isClosed(within seconds: Double) async throws -> Bool {
        try await offPool { self.isClosedBlocking(within: seconds) }
    }

    private func isClosedBlocking(within seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(max(1, deadline.timeIntervalSinceNow * 1000)))
            if ready <= 0 { continue }
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { return true }
        }
        return false
    }
}

/// A loopback listener that answers every connection with `answer` and then
/// holds it open, sending one more byte every `trickle` if given: a server
/// that stalls or trickles mid-response.
final class StallingListener: @unchecked Sendable {
    let fd: Int32
    let port: Int
    private final class Accepted: Sendable {
        let fds = Mutex<[Int32]>([])
        let trickling = Mutex<[Int32]>([])
    }
    private let accepted = Accepted()
    private let thread: Thread

    init(answer: String = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nx", trickle: Duration? = nil) throws {
        (fd, port) = try listenOnLoopback()
        let fd = self.fd
        let accepted = self.accepted
        let bytes = Array(answer.utf8)
        thread = Thread {
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { return }
                // Answer only once the request's head is in, as a server would (an answer before the
                // request is an unsolicited response to the client).
                var head: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 4096)
                while !head.suffix(4).elementsEqual("\r\n\r\n".utf8) {
                    let count = recv(client, &buffer, buffer.count, 0)
                    if count <= 0 { break }
                    head += buffer[0..<count]
                }
                _ = bytes.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard let trickle else {
                    accepted.fds.withLock { $0.append(client) }
                    continue
                }
                // This thread owns the descriptor and closes it itself once a send fails (after `close()`
                // shuts it down): closing it from elsewhere would let it write into a reused descriptor.
                accepted.trickling.withLock { $0.append(client) }
                Thread {
                    var byte = UInt8(ascii: "x")
                    defer {
                        #if canImport(Glibc)
                            _ = Glibc.close(client)
                        #else
                            _ = Darwin.close(client)
                        #endif
                    }
                    while send(client, &byte, 1, Int32(MSG_NOSIGNAL)) == 1 {
                        Thread.sleep(
                            forTimeInterval: Double(trickle.components.seconds) + Double(trickle.components.attoseconds)
                                / 1e18)
                    }
                }.start()
            }
        }
        thread.start()
    }

    func close() {
        shutdown(fd, Int32(SHUT_RDWR))
        #if canImport(Glibc)
            _ = Glibc.close(fd)
        #else
            _ = Darwin.close(fd)
        #endif
        for client in accepted.trickling.withLock({ $0 }) { shutdown(client, Int32(SHUT_RDWR)) }
        for client in accepted.fds.withLock({ $0 }) {
            #if canImport(Glibc)
                _ = Glibc.close(client)
            #else
                _ = Darwin.close(client)
            #endif
        }
    }
}

/// A loopback HTTP server that answers every request `200 ok`, except that
/// its first connection is closed, unanswered, when its second request
/// arrives: a keep-alive connection the server dropped as the client reused it.
final class ClosingListener: @unchecked Sendable {
    let fd: Int32
    let port: Int
    private final class Count: Sendable { let value = Mutex(0) }
    private let count = Count()
    /// Requests received, answered or not.
    var requests: Int { count.value.withLock { $0 } }

    init() throws {
        (fd, port) = try listenOnLoopback()
        let fd = self.fd
        let counted = count
        Thread {
            var connection = 0
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { return }
                let first = connection == 0
                connection += 1
                Thread {
                    var served = 0
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    var pending: [UInt8] = []
                    while true {
                        let count = recv(client, &buffer, buffer.count, 0)
                        if count <= 0 { break }
                        pending += buffer[0..<count]
                        guard pending.suffix(4).elementsEqual("\r\n\r\n".utf8) else { continue }
                        pending = []
                        counted.value.withLock { $0 += 1 }
                        if first, served == 1 { break }  // the second request on the first connection
                        let answer = Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".utf8)
                        _ = answer.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                        served += 1
                    }
                    closeSocket(client)
                }.start()
            }
        }.start()
    }

    func close() {
        shutdown(fd, Int32(SHUT_RDWR))
        closeSocket(fd)
    }
}

/// A TCP listener on 127.0.0.1 at a port the kernel picks.
func listenOnLoopback() throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard fd >= 0, bound == 0, listen(fd, 8) == 0 else { throw CocoaError(.fileReadUnknown) }
    var actual = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &actual) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return (fd, Int(UInt16(bigEndian: actual.sin_port)))
}

func closeSocket(_ fd: Int32) {
    #if canImport(Glibc)
        _ = Glibc.close(fd)
    #else
        _ = Darwin.close(fd)
    #endif
}

/// A listener that answers each request, one per connection, with the next
/// of `answers` (each a whole HTTP response that says `Connection: close`):
/// a server, or someone in its place, scripted request by request.
final class ScriptedListener: @unchecked Sendable {
    let fd: Int32
    let port: Int

    init(answers: [String]) throws {
        (fd, port) = try listenOnLoopback()
        let fd = self.fd
        Thread {
            for answer in answers {
                let client = accept(fd, nil, nil)
                if client < 0 { return }
                // The whole request (head and its Content-Length of body) is read first: closing with
                // unread bytes would reset the connection under the answer.
                var request: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 4096)
                var expected: Int?
                while expected.map({ request.count < $0 }) ?? true {
                    let count = recv(client, &buffer, buffer.count, 0)
                    if count <= 0 { break }
                    request += buffer[0..<count]
                    guard expected == nil, let end = request.firstRange(of: Array("\r\n\r\n".utf8)) else { continue }
                    let head = String(decoding: request[..<end.lowerBound], as: UTF8.self).lowercased()
                    let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                        .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) }
                    expected = end.upperBound + (length ?? 0)
                }
                let bytes = Array(answer.utf8)
                _ = bytes.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                shutdown(client, Int32(SHUT_WR))
                while recv(client, &buffer, buffer.count, 0) > 0 {}
                closeSocket(client)
            }
        }.start()
    }

    func close() {
        shutdown(fd, Int32(SHUT_RDWR))
        closeSocket(fd)
    }
}
