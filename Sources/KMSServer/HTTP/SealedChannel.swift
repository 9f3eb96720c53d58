import Foundation
import HTTPTypes
import Hummingbird
import KMSCore
import KMSProtocol
import NIOCore

/// The sealed channel of protocol v1 sections 4 and 5, in one place.
///
/// `handler` turns a function that sees only a validated inner request and
/// the admitted session into a route handler. Everything before the envelope
/// authenticates is thrown to the edge as is and answered in plain JSON;
/// everything after — replays, invalid inner fields, handler errors — is
/// thrown as a `SealedFailure` carrying the request that seals it, and the
/// edge (the one place errors become responses) answers it sealed.
///
/// This is a route wrapper rather than a middleware plus child context so
/// that the handler's typed result is sealed directly, without encoding a
/// response body and reading it back.
struct SealedChannel: Sendable {
    let sessions: SessionManager
    let maxBodyBytes: Int
    /// Finds a key by id or alias for permission decisions (nil: no such key).
    let resolveKey: RoutePermission<EmptyBody>.KeyResolver
    /// The same past the store's cache, for routes that change a key
    /// (`keys:rotate`, `keys:manage`): the keyId decided on is the one changed,
    /// so it must not come from an alias another instance moved a moment ago.
    let resolveKeyFresh: RoutePermission<EmptyBody>.KeyResolver
    /// Records `permission.denied` (identity-v1 section 7) without delaying the answer.
    var noteDenied: @Sendable (Permission?, KMSError, (String, String)?, Call) -> Void = { _, _, _, _ in }
    /// Records the failure of a call refused `404` while its permission was checked: the key it names, as
    /// named, does not exist (a crypto call's entry; an audit review found none written).
    var noteMissingKey: @Sendable (Permission, String, Call) async -> Void = { _, _, _ in }

    /// What a sealed handler sees besides its inner request.
    struct Call: Sendable {
        let opened: OpenedRequest
        let request: Request
        let context: KMSRequestContext
        var onDenied: @Sendable (Permission?, KMSError, (String, String)?, Call) -> Void = { _, _, _, _ in }
        /// The keyId the permission check decided on (nil without client
        /// identity, or for routes that name no key).
        var checkedKeyId: String?

        /// What the handler should use for the key the request names: the
        /// keyId the permission was decided on when there was a decision.
        func key(_ reference: String) -> String { checkedKeyId ?? reference }

        /// Records a `permission.denied` entry in the background; `target`: a `clients:manage` denial's
        /// target client, as its field.
        func noteDenied(_ permission: Permission?, _ error: KMSError, target: (String, String)? = nil) {
            onDenied(permission, error, target, self)
        }
    }

    typealias Handler<Inner: StrictDecodable, Output: Encodable & Sendable> =
        @Sendable (Inner, Call) async throws(KMSError) -> Output

    func handler<Inner: StrictDecodable, Output: Encodable & Sendable>(
        _ inner: Inner.Type, _ permission: RoutePermission<Inner>, _ handler: @escaping Handler<Inner, Output>
    ) -> RouteTable.Handler {
        { request, context in
            let carrier: EnvelopeCarrier
            switch EnvelopePlacement(method: request.method.rawValue) {
            case .body:
                carrier = .body(
                    try await RequestBodyReader.read(
                        request, limit: maxBodyBytes, host: context.clientAddress?.perHostKey ?? "unknown",
                        malformed: KMSError(.invalidEnvelope, RequestBodyReader.brokenBody)))
            case .header: carrier = .header(request.headers[HeaderNames.envelope])
            }
            let authenticated = try await sessions.authenticate(
                token: request.headers[HeaderNames.clientToken], method: request.method.rawValue,
                target: request.uri.description, carrier: carrier)
            let opened: OpenedRequest
            do throws(KMSError) {
                opened = try await sessions.admit(authenticated)
            } catch  where error.sessionGoneAtAdmission {
                // The store found the session gone (ended, revoked, its token rotated: perhaps on another
                // instance, while this one still knew it): answered as the lookup would have, in plain.
                // A session whose client is revoked when read is still answered sealed (identity-v1 section 3).
                throw error
            } catch {
                throw SealedFailure(error: error, request: authenticated)
            }
            do throws(KMSError) {
                let input: Inner
                do throws(RequestFieldError) {
                    input = try Inner.parse(authenticated.placement.innerJSON(authenticated.plaintext))
                } catch {
                    throw KMSError.invalidRequest(error)
                }
                var call = Call(opened: opened, request: request, context: context, onDenied: noteDenied)
                // identity-v1 section 3: inner request (400), then permission (403), then the handler.
                if let client = opened.client, let check = permission.check {
                    do throws(KMSError) {
                        let changesKey = permission.permission == .keysRotate || permission.permission == .keysManage
                        call.checkedKeyId = try await check(
                            input, call, client, changesKey ? resolveKeyFresh : resolveKey)
                    } catch {
                        if error.code == .permissionDenied { call.noteDenied(permission.permission, error) }
                        if error.code == .keyNotFound, let checked = permission.permission,
                            let name = permission.name?(input, call)
                        {
                            await noteMissingKey(checked, name, call)
                        }
                        throw error
                    }
                }
                let output = try await handler(input, call)
                let body: Data
                do {
                    body = try WireJSON.encode(output)
                } catch {
                    throw KMSError.internal("cannot encode a response")
                }
                return Response(
                    status: .ok, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(data: try authenticated.seal(body, status: 200))))
            } catch {
                throw SealedFailure(error: error, request: authenticated)
            }
        }
    }
}

/// An error after authentication: answered sealed for `request` by the edge.
struct SealedFailure: Error, CustomStringConvertible {
    let error: KMSError
    let request: AuthenticatedRequest

    var description: String { "SealedFailure(\(error.code.rawValue))" }
}
