import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import KMSCore
import KMSProtocol
import NIOSSL

/// The AWS-compatible listener (aws-kms-v1 section 1): its own port, TLS
/// 1.2+ on the configured or self-signed certificate (plain HTTP only when
/// allowed on loopback), the same allowlist, keys, clients and audit as the
/// native door. It runs as a service of the main application, so SIGTERM
/// stops both.
func makeAWSDoor(
    _ aws: AWSConfiguration, config: KMSConfiguration, dependencies: AppDependencies, keys: KeyRing, audit: Auditor,
    clients: ClientRegistry, secrets: any SecretBlobStore, masterKey: MasterKey, readiness: ReadinessGate,
    metrics: RequestMetrics
) async throws -> some ApplicationProtocol {
    let logger = dependencies.logger
    let responder = AWSResponder(
        resolver: ClientAddressResolver(allowlist: config.allowlist, trustedProxies: config.trustedProxies),
        maxBodyBytes: config.maxBodyBytes,
        authenticator: AWSAuthenticator(registry: clients, region: aws.region, clock: dependencies.clock),
        operations: AWSOperations(
            keys: keys, audit: audit, partition: aws.partition, checkGrants: config.clientAuth == .required),
        metrics: metrics, logger: logger, audit: audit)
    let server: HTTPServerBuilder
    // The same slow-client bounds as the native door (a TLS handshake that stalls runs into the header deadline).
    let http = HTTP1Channel.Configuration.guarded(
        config, counter: ConnectionGuard.Counter(config),
        malformed: AWSResponder.malformedAnswer, metrics: metrics, door: .aws)
    if aws.allowPlainHTTP {
        logger.warning("KMS_AWS_ALLOW_PLAIN_HTTP=true: the AWS door answers plain HTTP on loopback")
        server = .http1(configuration: http)
    } else {
        let material = try await TLSCertificateLoader.load(
            aws, secrets: secrets, masterKey: masterKey, now: dependencies.clock.now(), logger: logger,
            shared: config.store == .postgres)
        do {
            var tls = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(material.certificatePEM.utf8)).map {
                    .certificate($0)
                },
                privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(material.keyPEM.utf8), format: .pem)))
            tls.minimumTLSVersion = .tlsv12
            // TLS 1.2 with forward secrecy and AEAD only (a review connected with CBC-SHA1 suites, which
            // NIO's defaults keep for old clients; every SDK this door serves offers these).
            tls.cipherSuites = "ECDH+AESGCM:ECDH+CHACHA20"
            // After its close_notify the server waits this long for the client's before closing the socket,
            // and the connection keeps its place in the host's share meanwhile. NIO's 5 s let a client that
            // closes without a close_notify (Python's ssl, after `Connection: close`) lose its share to
            // connections already answered: more than five a second from one host were reset (a probe).
            // A second still lets a client's own close_notify arrive before the socket closes under it.
            tls.shutdownTimeout = .seconds(1)
            server = try .tls(.http1(configuration: http), tlsConfiguration: tls)
        } catch {
            throw StartupFailure(
                description: "KMS_TLS_CERT_FILE / KMS_TLS_KEY_FILE: not a usable PEM chain and key: \(error)")
        }
    }
    let onRunning = dependencies.onAWSServerRunning
    var door = Application(
        responder: responder, server: server,
        configuration: .init(address: .hostname(aws.host, port: aws.port), serverName: nil),
        onServerRunning: { channel in
            onRunning?(channel.localAddress?.port ?? 0)
            readiness.listening()
        },
        logger: logger)
    door.addServices(
        LeftOutLogLines(
            kinds: [
                .init(name: "aws refused addresses", sampler: responder.refusalLog, level: .info),
                .init(name: "aws refusals before the target", sampler: responder.plainRefusalLog, level: .info),
            ] + responder.logThinning.kinds(door: "aws"),
            interval: dependencies.leftOutLogInterval, logger: logger))
    return door
}
