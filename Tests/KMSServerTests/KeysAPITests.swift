import Foundation
import HummingbirdTesting
import KMSCore
import KMSProtocol
import Testing

/// Issue 4: every key and crypto route through the sealed channel, with its refusals.
@Suite struct KeysAPITests {
    func b64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    @Test func generateRotateShowAndList() async throws {
        let server = try TestServer(["KMS_KEY_GRACE_MS": "60000"])
        try await server.run { client in
            let session = WireSession(client: client)
            try await session.establish()
            let generated = try await session.call(.post, "/keys/generate", #"{"alias":"photos"}"#)
            #expect(generated.status == 200 && generated.json["version"] as? Int == 1)
            #expect(generated.json["status"] as? String == "active")
            let keyId = try #require(generated.json["keyId"] as? String)
            #expect(keyId.hasPrefix("key_"))
            #expect(try await session.call(.post, "/keys/generate", "{}").status == 200)
            let taken = try await session.call(.post, "/keys/generate", #"{"alias":"photos"}"#)
            #expect(taken.status == 409 && taken.errorCode == "alias_in_use")
            let badAlias = try await session.call(.post, "/keys/generate", #"{"alias":"key_x"}"#)
            #expect(badAlias.status == 400 && badAlias.errorField == "alias")

            server.clock.advance(milliseconds: 1_000)
            let rotated = try await session.call(.post, "/keys/rotate", #"{"keyId":"photos"}"#)
            #expect(rotated.json["version"] as? Int == 2 && rotated.json["keyId"] as? String == keyId)
            let missing = try await session.call(.post, "/keys/rotate", #"{"keyId":"nothing"}"#)
            #expect(missing.status == 404 && missing.errorCode == "key_not_found")

            for reference in [keyId, "photos"] {
                let shown = try await session.call(.get, "/keys/\(reference)")
                #expect(shown.status == 200 && shown.json["activeVersion"] as? Int == 2)
                #expect(shown.json["alias"] as? String == "photos")
                let versions = try #require(shown.json["versions"] as? [[String: Any]])
                #expect(versions.map { $0["status"] as? String } == ["grace", "active"])
                #expect(versions[0]["graceUntil"] is String && versions[1]["graceUntil"] == nil)
            }
            #expect(try await session.call(.get, "/keys/nothing").errorCode == "key_not_found")

            let page = try await session.call(.get, "/keys?limit=1")
            let next = try #require(page.json["next"] as? String)
            let rest = try await session.call(.get, "/keys?limit=1&after=\(next)")
            #expect((rest.json["keys"] as? [Any])?.count == 1 && rest.json["next"] == nil)
            // api-v1's template filled with nothing, and empty pairs, are the defaults (a review: 400s).
            for query in ["limit=&after=", "limit=1&", "&&limit=1", "after=&"] {
                let listed = try await session.call(.get, "/keys?\(query)")
                let count = query.contains("limit=1") ? 1 : 2
                #expect(listed.status == 200 && (listed.json["keys"] as? [Any])?.count == count, "\(query)")
            }
            for query in [
                "limit=0", "limit=1001", "limit=x", "limit=+5", "limit=%2B5", "limit=-1", "page=2", "limit=1&limit=2",
                "limit=%zz", "limit=%", "limit", "limit=&limit=5", "after=%zz", "%zz=1",
                "after=%00", "after=a/b",
            ] {
                let refused = try await session.call(.get, "/keys?\(query)")
                #expect(refused.status == 400 && refused.errorCode == "invalid_request", "\(query)")
            }
            // Unsealed access is refused before anything else.
            #expect(try await client.execute(uri: "/keys", method: .get).status == .unauthorized)
        }
    }

    @Test func cryptoRoutesAndTheirRefusals() async throws {
        try await TestServer().run { client in
            let session = WireSession(client: client)
            try await session.establish()
            let keyId = try #require(try await session.call(.post, "/keys/generate", "{}").json["keyId"] as? String)
            let sealed = try await session.call(
                .post, "/crypto/encrypt",
                #"{"keyId":"\#(keyId)","plaintext":"\#(b64("photo key"))","aad":"\#(b64("a"))"}"#)
            let ciphertext = try #require(sealed.json["ciphertext"] as? String)
            let opened = try await session.call(
                .post, "/crypto/decrypt", #"{"ciphertext":"\#(ciphertext)","aad":"\#(b64("a"))"}"#)
            #expect(opened.json["plaintext"] as? String == b64("photo key") && opened.json["version"] as? Int == 1)
            let wrongAAD = try await session.call(.post, "/crypto/decrypt", #"{"ciphertext":"\#(ciphertext)"}"#)
            #expect(wrongAAD.status == 400 && wrongAAD.errorCode == "decryption_failed")
            let malformed = try await session.call(.post, "/crypto/decrypt", #"{"ciphertext":"nope"}"#)
            #expect(malformed.status == 400 && malformed.errorField == "ciphertext")

            _ = try await session.call(.post, "/keys/rotate", #"{"keyId":"\#(keyId)"}"#)
            let rewrapped = try await session.call(
                .post, "/crypto/rewrap", #"{"ciphertext":"\#(ciphertext)","aad":"\#(b64("a"))"}"#)
            #expect(rewrapped.json["version"] as? Int == 2)
            #expect((rewrapped.json["ciphertext"] as? String)?.hasPrefix("kms:v1:\(keyId):2:") == true)

            let dataKey = try await session.call(.post, "/crypto/datakey", #"{"keyId":"\#(keyId)","bytes":16}"#)
            let dataCiphertext = try #require(dataKey.json["ciphertext"] as? String)
            let dataOpened = try await session.call(.post, "/crypto/decrypt", #"{"ciphertext":"\#(dataCiphertext)"}"#)
            #expect(dataOpened.json["plaintext"] as? String == dataKey.json["plaintext"] as? String)
            #expect(Base64.decodeStrict(dataKey.json["plaintext"] as? String ?? "")?.count == 16)
            #expect(try await session.call(.post, "/crypto/datakey", #"{"keyId":"\#(keyId)"}"#).status == 200)

            let big = Data(repeating: 1, count: 65_537).base64EncodedString()
            let refusals: [(String, String, String?)] = [
                ("/crypto/encrypt", #"{"keyId":"\#(keyId)","plaintext":"\#(big)"}"#, "plaintext"),
                ("/crypto/encrypt", #"{"keyId":"\#(keyId)","plaintext":"not b64"}"#, "plaintext"),
                ("/crypto/encrypt", #"{"keyId":"\#(keyId)"}"#, "plaintext"),
                ("/crypto/encrypt", #"{"keyId":"\#(keyId)","plaintext":"","extra":1}"#, "extra"),
                ("/crypto/encrypt", #"{"keyId":"\#(keyId)","plaintext":"","aad":null}"#, "aad"),
                ("/crypto/encrypt", #"{"keyId":7,"plaintext":""}"#, "keyId"),
                ("/crypto/datakey", #"{"keyId":"\#(keyId)","bytes":15}"#, "bytes"),
                ("/crypto/datakey", #"{"keyId":"\#(keyId)","bytes":65}"#, "bytes"),
                ("/crypto/rewrap", #"{"ciphertext":"kms:v1:bad"}"#, "ciphertext"),
                ("/keys/rotate", "{}", "keyId"),
            ]
            for (route, body, field) in refusals {
                let refused = try await session.call(.post, route, body)
                #expect(refused.status == 400 && refused.errorCode == "invalid_request", "\(route) \(body.prefix(60))")
                #expect(refused.errorField == field, "\(route)")
            }
            let unknown = try await session.call(.post, "/crypto/encrypt", #"{"keyId":"key_nope","plaintext":""}"#)
            #expect(unknown.status == 404 && unknown.errorCode == "key_not_found")
            let edge = Data(repeating: 2, count: 65_536).base64EncodedString()
            #expect(
                try await session.call(.post, "/crypto/encrypt", #"{"keyId":"\#(keyId)","plaintext":"\#(edge)"}"#)
                    .status == 200)
        }
    }

    @Test func retiredVersionsAreRefusedWithWhenGraceEnded() async throws {
        let server = try TestServer(["KMS_KEY_GRACE_MS": "5000"])
        try await server.run { client in
            let session = WireSession(client: client)
            try await session.establish()
            let keyId = try #require(try await session.call(.post, "/keys/generate", "{}").json["keyId"] as? String)
            let old = try await session.call(.post, "/crypto/encrypt", #"{"keyId":"\#(keyId)","plaintext":""}"#)
            _ = try await session.call(.post, "/keys/rotate", #"{"keyId":"\#(keyId)"}"#)
            server.clock.advance(milliseconds: 5_000)
            let ciphertext = try #require(old.json["ciphertext"] as? String)
            for route in ["/crypto/decrypt", "/crypto/rewrap"] {
                let retired = try await session.call(.post, route, #"{"ciphertext":"\#(ciphertext)"}"#)
                #expect(retired.status == 409 && retired.errorCode == "key_version_retired")
                let message = (retired.json["error"] as? [String: Any])?["message"] as? String ?? ""
                #expect(message.contains("version 1") && message.contains("Z"))
            }
        }
    }
}
