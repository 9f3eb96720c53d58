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

/// Binds each address `kms serve` will listen on, and lets go, before
/// start-up touches the store: a port already taken then stops the first
/// start before it writes a master key and a key store, with a message that
/// names the address and the variable to change. The real bind can still
/// fail (another program may take the port in between); `reason` words
/// that failure the same way.
public enum ListenCheck {
    public static func check(_ config: KMSConfiguration) async throws(StartupFailure) {
        try await probe(host: config.host, port: config.port, variables: "KMS_HOST, KMS_PORT")
        if let aws = config.aws {
            try await probe(host: aws.host, port: aws.port, variables: "KMS_AWS_HOST, KMS_AWS_PORT")
        }
    }

    /// What `kms serve` prints when a listener cannot be opened.
    public static func failure(host: String, port: Int, variables: String, _ error: any Error) -> StartupFailure {
        StartupFailure(
            description: "cannot listen on \(host):\(port) (\(variables)): \(reason(error))")
    }

    /// The cause of a bind failure in words, with what to do about it.
    public static func reason(_ error: any Error) -> String {
        guard let error = error as? IOError else { return "\(error)" }
        switch error.errnoCode {
        case EADDRINUSE:
            return
                "the address is already in use (another kms serve, or another program); stop it or choose another port"
        case EACCES:
            return "permission denied (ports below 1024 need privileges); choose a port above 1023"
        case EADDRNOTAVAIL:
            return "this host has no such address; use 127.0.0.1, 0.0.0.0 or an address of this host"
        default:
            return "\(error)"
        }
    }

    private static func probe(host: String, port: Int, variables: String) async throws(StartupFailure) {
        guard port != 0 else { return }
        do {
            let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: host, port: port).get()
            try await channel.close()
        } catch {
            throw failure(host: host, port: port, variables: variables, error)
        }
    }
}
