public import KMSCore
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Binds every address `kms serve` will listen on, all at once, and lets go,
/// before start-up touches the store: a port already taken (or the two doors
/// given one port) then stops the first start before it writes a master key
/// and a key store, with a message that names the address and the variables
/// to change. The real bind can still fail (another program may take the port
/// in between); `failure` words that the same way.
public enum ListenCheck {
    /// One listener: where, and the variables that set it.
    struct Listener {
        let host: String
        let port: Int
        let variables: String
    }

    public static func check(_ config: KMSConfiguration) async throws(StartupFailure) {
        var listeners = [Listener(host: config.host, port: config.port, variables: "KMS_HOST, KMS_PORT")]
        if let aws = config.aws, aws.port != 0 {
            listeners.append(Listener(host: aws.host, port: aws.port, variables: "KMS_AWS_HOST, KMS_AWS_PORT"))
        }
        // Held open together, so two doors on one port fail here too; not reading, so a
        // connection that arrives meanwhile is reset by the close, not accepted and left hanging.
        var bound: [any Channel] = []
        var refused: StartupFailure?
        for listener in listeners where listener.port != 0 {
            do {
                bound.append(
                    try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                        .serverChannelOption(.autoRead, value: false)
                        .serverChannelOption(.backlog, value: 1)
                        .bind(host: listener.host, port: listener.port).get())
            } catch {
                refused = failure(host: listener.host, port: listener.port, variables: listener.variables, error)
                break
            }
        }
        // Closed, and the close waited for, before the real listeners bind.
        for channel in bound { try? await channel.close() }
        if let refused { throw refused }
    }

    /// What `kms serve` prints when a listener cannot be opened.
    public static func failure(host: String, port: Int, variables: String, _ error: any Error) -> StartupFailure {
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        return StartupFailure(description: "cannot listen on \(address) (\(variables)): \(reason(error, port: port))")
    }

    /// The cause of a bind failure in words, with what to do about it.
    static func reason(_ error: any Error, port: Int) -> String {
        guard let error = error as? IOError else { return "\(error)" }
        switch error.errnoCode {
        case EADDRINUSE:
            return
                "the address is already in use (another kms serve, or another program); stop it or choose another port"
        case EACCES where port < 1024:
            return "permission denied: ports below 1024 need privileges; choose a port above 1023"
        case EADDRNOTAVAIL:
            return "this host has no such address; use 127.0.0.1, 0.0.0.0 or an address of this host"
        default:
            return "\(error)"
        }
    }
}
