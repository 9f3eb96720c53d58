import Foundation
import KMSClient
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// deploy/kms.service is `Type=notify`: the test plays systemd's part with a
/// datagram socket as `NOTIFY_SOCKET`. `READY=1` must arrive only once every
/// listener answers, and `STOPPING=1` on SIGTERM.
@Suite struct ReadinessTests {
    /// A bound unix datagram socket, read with a timeout.
    final class NotifySocket: @unchecked Sendable {
        let path: String
        let fd: Int32

        init() throws {
            path =
                FileManager.default.temporaryDirectory.appendingPathComponent("notify-\(UUID().uuidString.prefix(8))")
                .path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in raw.copyBytes(from: bytes) }
            let bound = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            guard fd >= 0, bound == 0 else { throw CLIFailure("cannot bind the notify socket") }
        }

        /// The next datagram, or nil after `seconds`.
        func receive(within seconds: Int32) -> String? {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, seconds * 1000) == 1 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(fd, &buffer, buffer.count, 0)
            return count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : nil
        }

        deinit {
            close(fd)
            unlink(path)
        }
    }

    @Test func readyAfterEveryListenerAndStoppingOnSigterm() async throws {
        let notify = try NotifySocket()
        let awsPort = TestPorts.take()
        let server = try await ServeProcess(environment: [
            "NOTIFY_SOCKET": notify.path, "KMS_AWS_PORT": "\(awsPort)", "KMS_AWS_HOST": "127.0.0.1",
            "KMS_AWS_ALLOW_PLAIN_HTTP": "true",
        ])
        let ready = try #require(notify.receive(within: 30))
        #expect(ready.contains("READY=1"))
        // Ready means both listeners answer now.
        let native = try await HTTPTransport(baseURL: server.url).send(
            TransportRequest(method: "GET", target: "/healthz", headers: [], body: nil))
        #expect(native.status == 200)
        let aws = try await HTTPTransport(baseURL: "http://127.0.0.1:\(awsPort)").send(
            TransportRequest(method: "GET", target: "/healthz", headers: [], body: nil))
        #expect(aws.status == 404)  // the AWS door answers POST / only: it is up
        #expect(notify.receive(within: 1) == nil)  // READY once
        #expect(try await server.stop() == 0)
        #expect(notify.receive(within: 10)?.contains("STOPPING=1") == true)
    }
}
