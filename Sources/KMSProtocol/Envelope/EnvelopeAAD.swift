/// The additional authenticated data of protocol v1 sections 4 and 5.
///
/// Binding method, target, session and seq into the tag is what makes a
/// copied envelope useless on another route, another session or a second
/// time; binding the status into responses stops an attacker from turning
/// an error into a success.
public enum EnvelopeAAD {
    /// `"kms-v1/request" \n METHOD \n TARGET \n sessionId \n decimal(seq)`
    public static func request(method: String, target: String, sessionId: String, seq: UInt64) -> [UInt8] {
        Array("kms-v1/request\n\(method.uppercased())\n\(target)\n\(sessionId)\n\(seq)".utf8)
    }

    /// `"kms-v1/response" \n sessionId \n decimal(seq) \n decimal(status)`
    public static func response(sessionId: String, seq: UInt64, status: Int) -> [UInt8] {
        Array("kms-v1/response\n\(sessionId)\n\(seq)\n\(status)".utf8)
    }
}
