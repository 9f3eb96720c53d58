import Foundation
import KMSProtocol

/// Typed, validating reads of configuration values; every failure names its variable.
struct ConfigReader {
    /// A refused value as an error message may quote it: short ones only (`Echo.mayShow`: an AWS secret
    /// access key is 40 bytes, a token at least 32), their control characters
    /// escaped here (whatever writes the message: standard error, a log). A longer one may hold
    /// something else (a review's CRLF `.env` made `KMS_PORT` the rest of the file, master key included,
    /// which the refusal then printed to the journal). Backslashes are not doubled, so a writer that
    /// escapes again changes nothing.
    static func shown(_ text: String) -> String {
        guard Echo.mayShow(text) else {
            return "a value of \(text.utf8.count) bytes (not shown: it may hold more than this setting)"
        }
        return "'\(TerminalText.escaped(text, doublingBackslashes: false))'"
    }

    let values: [String: String]

    /// The value, or nil when unset or empty: for variables whose empty value
    /// means none (`KMS_TOKEN_PREFIX=`: no prefix; `KMS_MASTER_KEY=`: the file).
    func string(_ name: String) throws(KMSConfiguration.Invalid) -> String? {
        guard let value = values[name], !value.isEmpty else { return nil }
        return value
    }

    /// One of a set of words (`KMS_ENV`, `KMS_STORE`…): nil only when unset, so
    /// that an empty value is refused by the caller's parse like any other
    /// word it does not know (`KMS_ENV=` must not mean development).
    func choice(_ name: String) -> String? { values[name] }

    /// Whether `name` is set to nothing (an optional listener's "off").
    func isSetButEmpty(_ name: String) -> Bool {
        values[name].map { $0.trimmingCharacters(in: .whitespaces).isEmpty } ?? false
    }

    /// A variable with a default (a number, a boolean, a host, a path): set to
    /// nothing (`KMS_PORT=`, `KMS_HOST=`) it is refused, not given its
    /// default, since api-v1 lets nothing fall back silently.
    func setting(_ name: String, _ what: String = "a value") throws(KMSConfiguration.Invalid) -> String? {
        guard let value = values[name] else { return nil }
        guard !value.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw .init(variable: name, reason: "is set but empty: give \(what), or unset it for the default")
        }
        return value
    }

    func integer(_ name: String, in range: ClosedRange<Int64>) throws(KMSConfiguration.Invalid) -> Int64? {
        guard let text = try setting(name, "a whole number") else { return nil }
        let digits = text.trimmingCharacters(in: .whitespaces)
        // A minus only where the range goes below zero (`KMS_TEST_CLOCK_OFFSET_MS`); never a plus.
        let magnitude = range.lowerBound < 0 && digits.hasPrefix("-") ? digits.dropFirst() : Substring(digits)
        guard magnitude.isDecimalDigits, let value = Int64(digits) else {
            throw .init(variable: name, reason: "must be a whole number (digits only), got \(ConfigReader.shown(text))")
        }
        guard range.contains(value) else {
            throw .init(variable: name, reason: "must be between \(range.lowerBound) and \(range.upperBound)")
        }
        return value
    }

    func boolean(_ name: String) throws(KMSConfiguration.Invalid) -> Bool? {
        guard let text = try setting(name, "true or false") else { return nil }
        switch text.trimmingCharacters(in: .whitespaces).lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default:
            throw .init(
                variable: name, reason: "must be true/false, 1/0, yes/no or on/off, got \(ConfigReader.shown(text))")
        }
    }

    /// A CSV of addresses and ranges. `emptyMeansUnset`: an empty value keeps the default.
    func addressList(_ name: String, emptyMeansUnset: Bool) throws(KMSConfiguration.Invalid) -> [AddressRange]? {
        guard let text = values[name] else { return nil }
        if text.trimmingCharacters(in: .whitespaces).isEmpty { return emptyMeansUnset ? nil : [] }
        var ranges: [AddressRange] = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = item.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { throw .init(variable: name, reason: "has an empty list item") }
            do {
                ranges.append(try AddressRange(parsing: trimmed))
            } catch {
                throw .init(variable: name, reason: error.description)
            }
        }
        return ranges
    }

    /// An address to listen on: an IP literal, or a host name resolved at bind. Text that can be
    /// neither (`999.1.1.1`, `::1x`, `0.0.0.0:3000`, a space) is refused here, so that `kms serve` exits
    /// 78 as for any malformed setting; a well-formed name that does not resolve, or an address this
    /// host does not have yet (a VPN interface not up at boot), is left to the bind, which exits 1 and
    /// is restarted. A label may hold `_`, which DNS names do not but `/etc/hosts` and container
    /// service names (`kms_server`) do.
    func listenHost(_ name: String) throws(KMSConfiguration.Invalid) -> String? {
        guard let text = try setting(name, "an address such as 127.0.0.1") else { return nil }
        let looksNumeric = text.utf8.allSatisfy { $0 == UInt8(ascii: ".") || (48...57).contains($0) }
        if text.contains(":") || looksNumeric {
            // A link-local address names its interface (`fe80::1%eth0`), as getaddrinfo reads it.
            let parts = text.split(separator: "%", maxSplits: 1, omittingEmptySubsequences: false)
            let zoneIsName =
                parts.count == 1
                || (text.contains(":") && !parts[1].isEmpty
                    && parts[1].utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") })
            guard zoneIsName, IPAddress(parts[0]) != nil else {
                throw .init(
                    variable: name,
                    reason:
                        "is not an IPv4 or IPv6 address (no brackets or port), nor a host name: \(ConfigReader.shown(text))"
                )
            }
            return text
        }
        // A fully qualified name may end in its root's dot (`kms.tail1234.ts.net.`, as tailscale prints it).
        let hostName = text.hasSuffix(".") ? text.dropLast() : Substring(text)
        let labels = hostName.split(separator: ".", omittingEmptySubsequences: false)
        let isName =
            hostName.utf8.count <= 253
            && labels.allSatisfy { label in
                (1...63).contains(label.utf8.count) && label.first != "-" && label.last != "-"
                    && label.utf8.allSatisfy { byte in
                        byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || (48...57).contains(byte)
                            || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte | 0x20)
                    }
            }
        guard isName else {
            throw .init(variable: name, reason: "is neither an IP address nor a host name: \(ConfigReader.shown(text))")
        }
        return text
    }

    func tokenPrefix(_ name: String) throws(KMSConfiguration.Invalid) -> String? {
        guard let text = try string(name) else { return nil }
        guard ClientToken.isValidPrefix(text) else {
            throw .init(variable: name, reason: "must be at most 64 characters of [A-Za-z0-9._~-]")
        }
        return text
    }
}
