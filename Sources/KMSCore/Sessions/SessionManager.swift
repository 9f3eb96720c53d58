import Crypto
public import Foundation
public import KMSProtocol

/// The session protocol of protocol-v1.md, without HTTP: init, key exchange,
/// opening and sealing envelopes, token rotation and session end.
///
/// The order of checks in each method is the order the protocol prescribes;
/// changing it changes which error a client sees.
public struct SessionManager: Sendable {
    public let store: any SessionStore
    public let identity: IdentityKey
    public let policy: SessionPolicy
    public let clock: any KMSClock
    /// Where the RSA unwraps run (bounded threads of their own).
    public let rsa: RSAWorkQueue
    /// Enrolled clients (identity-v1); consulted at key exchange and on every
    /// admitted request when `clientAuthRequired`.
    public let clients: ClientRegistry
    /// `KMS_CLIENT_AUTH=required`; false is protocol-v1 behaviour.
    public let clientAuthRequired: Bool
    /// Verified against when a `clientKey` is unknown, so that timing does not
    /// tell an unknown key from a bad signature.
    private let dummyClientKey = Curve25519.Signing.PrivateKey().publicKey

    public init(
        store: any SessionStore, identity: IdentityKey, policy: SessionPolicy, clock: any KMSClock,
        clients: ClientRegistry, clientAuthRequired: Bool, rsa: RSAWorkQueue = RSAWorkQueue()
    ) {
        self.store = store
        self.identity = identity
        self.policy = policy
        self.clock = clock
        self.clients = clients
        self.clientAuthRequired = clientAuthRequired
        self.rsa = rsa
    }

    // MARK: Init and key exchange

    /// `GET /session/init`: a pending session with at least 128 bits of randomness in its id.
    public func startSession(clientAddress: String) async throws(KMSError) -> SessionInitResponse {
        let now = clock.now()
        let pending = PendingSession(
            id: Base64.encodeURL(SymmetricKeyBytes.random(count: 24)), clientAddress: clientAddress,
            expiresAt: now.addingMilliseconds(policy.initTtlMs))
        try await store.addPending(pending, now: now, perAddress: policy.pendingPerAddress, max: policy.pendingMax)
        return SessionInitResponse(
            sessionId: pending.id, algorithm: SessionInitResponse.keyExchangeAlgorithm,
            publicKey: identity.publicKeyPEM,
            fingerprint: identity.fingerprint, expiresAt: Timestamp.format(pending.expiresAt))
    }

    /// `POST /session/key-exchange`. Returns the sealed seq-0 response body,
    /// the new session's id and, with client authentication, its client.
    public func exchangeKey(token: String?, body: Data) async throws(KMSError) -> (
        sessionId: String, sealed: Data, client: ClientRecord?
    ) {
        let tokenHash = try checkToken(token)
        let request: KeyExchangeRequest
        do {
            request = try KeyExchangeRequest.parse(body)
        } catch {
            throw error.field == nil ? KMSError(.badRequest, error.message) : KMSError.invalidRequest(error)
        }
        let proof = clientAuthRequired ? try ClientProof(body: body) : nil
        let now = clock.now()
        // Ids this server issues are b64url; anything else cannot name a pending session.
        guard (22...64).contains(request.sessionId.utf8.count),
            request.sessionId.utf8.allSatisfy({
                ClientToken.isTokenCharacter($0) && $0 != UInt8(ascii: ".") && $0 != UInt8(ascii: "~")
            }),
            try await store.hasPending(id: request.sessionId, now: now)
        else { throw KMSError.unknownSession }
        if try await store.isTokenInUse(tokenHash, now: now) { throw KMSError.tokenInUse }
        // protocol-v1: a place for the unwrap is taken before the pending session is
        // used up, so a busy server answers 503 and the client can retry the same
        // exchange. identity-v1 section 2 puts capacity after the client check, so a
        // host without an enrolled key never holds a place either.
        var slot = proof == nil ? try rsa.reserve() : nil
        // From here the pending session is used up, whether or not the unwrap succeeds.
        guard try await store.takePending(id: request.sessionId, now: now) != nil else {
            throw KMSError.unknownSession
        }
        // identity-v1 section 2: the client is checked before the unwrap, so a
        // host without an enrolled key never costs an RSA decryption.
        var client: ClientRecord?
        if let proof {
            // identity-v1 section 2: only text that is not b64 is refused before the client check. A
            // wrapped key of the wrong length is an unwrap failure, judged after it (a host without an
            // enrolled key gets 401 whatever it wraps); the decode is bounded by the body limit.
            guard let wrapped = Base64.decodeStrict(request.wrappedKey) else { throw KMSError.keyExchangeFailed }
            client = try await authenticateClient(
                proof,
                transcript: ClientAuth.transcript(
                    sessionId: request.sessionId, wrappedKey: wrapped, token: token ?? "",
                    serverFingerprint: identity.fingerprint))
            // The client is known: a wrapped key that cannot be one is the unwrap's failure, without its work.
            guard wrapped.count == IdentityKey.bits / 8 else { throw KMSError.keyExchangeFailed }
            slot = try rsa.reserve()
        }
        guard let slot else { throw KMSError.internal("no RSA place reserved") }
        let (identity, wrappedKey) = (self.identity, request.wrappedKey)
        let key = try await rsa.run(slot) { () throws(KMSError) in
            try SessionKeyUnwrapper.unwrap(wrappedKey: wrappedKey, with: identity)
        }
        let createdAt = clock.now()
        let session = SessionRecord(
            id: request.sessionId, tokenHash: tokenHash, key: key, createdAt: createdAt,
            expiresAt: policy.initialExpiry(createdAt: createdAt),
            absoluteExpiry: createdAt.addingMilliseconds(policy.maxLifetimeMs), clientId: client?.clientId)
        try await store.createSession(
            session, now: createdAt, max: policy.sessionsMax, perClient: policy.sessionsPerClient)
        if let client { try await checkStillActive(client, session: session.id) }
        let confirmation = KeyExchangeResponse(
            sessionId: session.id, expiresAt: Timestamp.format(session.expiresAt),
            ttlMs: min(policy.ttlMs, policy.maxLifetimeMs), sliding: policy.sliding,
            maxLifetimeMs: policy.maxLifetimeMs)
        let sealed = try seal(confirmation, sessionId: session.id, key: key, seq: 0, status: 200)
        return (session.id, sealed, client)
    }

    /// identity-v1 section 3: after a revocation's `200`, no session of the
    /// client is usable. An exchange whose client check ran before the
    /// revocation would otherwise create its session after the revocation
    /// deleted the others (a review found one answered `200` 108 ms later), so
    /// the client is read again once its session exists: a revocation from
    /// then on deletes the session itself. A session left behind by a failed
    /// delete is still refused at admission, which reads the client again.
    private func checkStillActive(_ client: ClientRecord, session id: String) async throws(KMSError) {
        let active: Bool
        do {
            active = try await clients.activeClient(id: client.clientId) != nil
        } catch {
            try? await store.deleteSession(id: id)
            throw error
        }
        guard active else {
            try? await store.deleteSession(id: id)
            throw Self.clientNotAuthenticated
        }
    }

    /// The one answer for an unknown client key, a revoked client and a bad signature.
    public static let clientNotAuthenticated = KMSError(
        .clientNotAuthenticated,
        "client authentication failed: the key is not enrolled here, the client is revoked, or the signature does not verify"
    )

    /// Finds the active client of `proof.clientKey` and verifies its
    /// signature; an unknown key is verified against a dummy key so that the
    /// three failures take the same path.
    private func authenticateClient(_ proof: ClientProof, transcript: Data) async throws(KMSError) -> ClientRecord {
        let client = try await clients.activeClient(fingerprint: proof.clientKey)
        let publicKey = client.flatMap { try? Curve25519.Signing.PublicKey(rawRepresentation: $0.publicKey) }
        let verified = ClientAuth.verify(
            proof.signature, transcript: transcript, publicKey: publicKey ?? dummyClientKey)
        guard verified, let client, publicKey != nil else { throw Self.clientNotAuthenticated }
        return client
    }

    // MARK: Sealed requests

    /// Steps 2 to 5 of protocol v1 section 4: token, live session, envelope
    /// shape, authentication. Errors thrown here are answered in plain JSON;
    /// every answer after this returns is sealed with the value it returns.
    public func authenticate(
        token: String?, method: String, target: String, carrier: EnvelopeCarrier
    ) async throws(KMSError) -> AuthenticatedRequest {
        let tokenHash = try checkToken(token)
        guard var session = try await store.session(tokenHash: tokenHash, now: clock.now()) else {
            throw KMSError.unknownSession
        }
        let envelope = try parseEnvelope(carrier)
        func open(_ session: SessionRecord) -> Data? {
            let aad = EnvelopeAAD.request(method: method, target: target, sessionId: session.id, seq: envelope.seq)
            return try? EnvelopeCipher.open(envelope, key: session.key, aad: aad)
        }
        var opened = open(session)
        if opened == nil,
            let fresh = try await store.refreshedSession(tokenHash: tokenHash, stale: session, now: clock.now())
        {
            // A remembered session may be stale: its token freed on another instance and taken by a new one.
            session = fresh
            opened = open(fresh)
        }
        guard let plaintext = opened else { throw KMSError.authenticationFailed }
        return AuthenticatedRequest(
            sessionId: session.id, tokenHash: session.tokenHash, key: session.key, seq: envelope.seq,
            placement: carrier.placement, plaintext: plaintext, clientId: session.clientId)
    }

    /// Step 6: records the seq (refusing replays) and slides the expiry.
    /// Errors thrown here are answered sealed.
    public func admit(_ request: AuthenticatedRequest) async throws(KMSError) -> OpenedRequest {
        let admitted: AdmittedSequence
        do {
            admitted = try await store.acceptSequenceReadingClient(
                sessionId: request.sessionId, tokenHash: request.tokenHash, seq: request.seq, now: clock.now(),
                policy: policy)
        } catch  where error.code == .unknownSession {
            var gone = error
            gone.cause = .sessionGoneAtAdmission
            throw gone
        }
        let expiresAt = admitted.expiresAt
        // identity-v1 section 3: the client is read now, never copied from the
        // key exchange; a revoked client (or, with auth required, a session
        // bound to none) ends the session.
        var client: ClientRecord?
        // With KMS_CLIENT_AUTH=off sessions have no client (identity-v1 section 8),
        // even one made while it was required.
        if let clientId = request.clientId, clientAuthRequired {
            client =
                admitted.clientRead
                ? clients.activeClient(admitted.client, id: clientId)
                : try await clients.activeClient(id: clientId)
        }
        if client == nil, clientAuthRequired {
            try await store.deleteSession(id: request.sessionId)
            throw KMSError.unknownSession
        }
        if request.placement.sealsEmptyBody, !request.plaintext.isEmpty {
            throw KMSError(.invalidRequest, "GET and DELETE requests must seal the empty byte string")
        }
        return OpenedRequest(request: request, expiresAt: expiresAt, client: client)
    }

    // MARK: Token rotation and session end

    /// `POST /session/rotate-token`: a server-issued token for `{}`, or the client's own.
    public func rotateToken(_ request: OpenedRequest, body: RotateTokenRequest) async throws(KMSError)
        -> RotateTokenResponse
    {
        let token: String
        if let supplied = body.token {
            guard ClientToken.isWellFormed(supplied, prefix: policy.tokenPrefix) else {
                throw KMSError(.invalidRequest, tokenRule, field: "token")
            }
            token = supplied
        } else {
            token = ClientToken.issue(prefix: policy.tokenPrefix)
        }
        let session = try await store.rotateToken(
            sessionId: request.sessionId, oldTokenHash: request.tokenHash, newTokenHash: ClientToken.hash(token),
            now: clock.now(), policy: policy)
        return RotateTokenResponse(token: token, expiresAt: Timestamp.format(session.expiresAt))
    }

    /// `DELETE /session`.
    public func endSession(_ request: OpenedRequest) async throws(KMSError) {
        try await store.deleteSession(id: request.sessionId)
    }

    // MARK: Helpers

    private var tokenRule: String {
        if let prefix = policy.tokenPrefix, !prefix.isEmpty {
            // The prefix itself is not echoed (protocol-v1 section 8: no message repeats
            // secrets or tokens, and an operator may treat the prefix as one).
            return "the token must match [A-Za-z0-9._~-]{32,256} and start with this server's KMS_TOKEN_PREFIX"
        }
        return "the token must match [A-Za-z0-9._~-]{32,256}"
    }

    private func checkToken(_ token: String?) throws(KMSError) -> TokenHash {
        guard let token, ClientToken.isWellFormed(token, prefix: policy.tokenPrefix) else {
            throw KMSError(.invalidToken, "missing or malformed X-Client-Token: \(tokenRule)")
        }
        return ClientToken.hash(token)
    }

    private func parseEnvelope(_ carrier: EnvelopeCarrier) throws(KMSError) -> SealedEnvelope {
        let json: Data
        switch carrier {
        case .body(let body):
            json = body
        case .header(let header):
            guard let header, let decoded = EnvelopePlacement.json(fromHeader: header) else {
                throw KMSError(
                    .invalidEnvelope, "GET and DELETE need header X-KMS-Envelope: the b64 of the envelope JSON")
            }
            json = decoded
        }
        do {
            return try SealedEnvelope(json: json, lowestSeq: 1)
        } catch {
            throw KMSError(.invalidEnvelope, error.message)
        }
    }

    private func seal(
        _ value: some Encodable, sessionId: String, key: SymmetricKey, seq: UInt64, status: Int
    ) throws(KMSError) -> Data {
        do {
            let body = try WireJSON.encode(value)
            return try EnvelopeCipher.sealResponse(body, key: key, sessionId: sessionId, seq: seq, status: status)
        } catch {
            throw KMSError.internal("cannot seal the key-exchange response")
        }
    }
}

/// The identity members of a key-exchange body, checked as identity-v1
/// section 2 and rule 13.2 say (`400 invalid_request` with the field).
struct ClientProof {
    let clientKey: String
    let signature: Data

    /// Reads the members from the body (already parsed once as a whole).
    init(body: Data) throws(KMSError) {
        var reader: JSONObjectReader
        do {
            reader = try JSONObjectReader(bytes: body)
        } catch {
            throw KMSError(.badRequest, error.message)
        }
        let (key, signature) = (reader.take("clientKey"), reader.take("signature"))
        if key == nil, signature == nil {
            throw KMSError(
                .invalidRequest,
                "this server requires client authentication (identity-v1): enrol this device's key",
                field: "clientKey")
        }
        guard let key else { throw KMSError(.invalidRequest, "`clientKey` is required", field: "clientKey") }
        guard case .string(let text) = key, ClientAuth.isWellFormedClientKey(text) else {
            throw KMSError(
                .invalidRequest, "`clientKey` must be SHA256: followed by 64 lowercase hex digits", field: "clientKey")
        }
        guard let signature else { throw KMSError(.invalidRequest, "`signature` is required", field: "signature") }
        guard case .string(let encoded) = signature, let bytes = Base64.decodeStrict(encoded), bytes.count == 64 else {
            throw KMSError(
                .invalidRequest, "`signature` must be the base64 of a 64-byte Ed25519 signature", field: "signature")
        }
        clientKey = text
        self.signature = bytes
    }
}
