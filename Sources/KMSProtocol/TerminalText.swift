/// Text from elsewhere (a server, a file's unauthenticated header, a client's
/// request in the server's log) shown on a terminal: control characters could
/// clear the screen, recolour it or forge lines of output. Here, in the
/// module client and server share, so the CLI's output and the server's log
/// follow one rule.
public enum TerminalText {
    /// C0 controls, DEL and C1 controls.
    public static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }

    /// Characters that change how the text around them reads without
    /// showing themselves: format characters (bidi overrides, zero-width
    /// spaces, the BOM, tags) and the line and paragraph separators. The
    /// zero-width joiner and non-joiner are left out: Persian, Indic scripts
    /// and emoji sequences need them, and they reorder nothing.
    public static func isInvisible(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == "\u{200C}" || scalar == "\u{200D}" { return false }
        switch scalar.properties.generalCategory {
        case .format, .lineSeparator, .paragraphSeparator: return true
        default: return false
        }
    }

    /// What a terminal must not be handed raw: a control or an invisible
    /// character (the one rule every way of showing server text follows).
    public static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        isControl(scalar) || isInvisible(scalar)
    }

    /// JSON text with every control and invisible character that JSON
    /// leaves raw (DEL, C1, bidi overrides, line separators) written as a
    /// `\uXXXX` escape: the same JSON to a program, and nothing a terminal
    /// acts on. Such characters only occur inside strings.
    public static func jsonEscaped(_ json: String) -> String {
        var out = ""
        for scalar in json.unicodeScalars {
            // JSON already escapes C0 (and the structure is C0 whitespace): only the rest is written out.
            if isUnsafe(scalar) && scalar.value >= 0x20 {
                for unit in String(scalar).utf16 {
                    let hex = String(unit, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                }
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// `jsonEscaped` for JSON bytes, nil when there is nothing to escape: every character it writes
    /// out is past ASCII (or DEL), so a line of ASCII is left as it is without being decoded. One
    /// rule for the server's JSON log and the audit log.
    ///
    /// The look runs on contiguous bytes: called from another module, a scan of `some Collection`
    /// went through the collection's witnesses element by element, and on every audit line it cost
    /// about 8 % of a sealed encrypt's server CPU (BENCHMARKS.md, "2026-12-04 (22:50)").
    public static func jsonEscapedIfNeeded(_ json: some Collection<UInt8>) -> String? {
        let ascii =
            json.withContiguousStorageIfAvailable(isBelowDEL) ?? Array(json).withUnsafeBufferPointer(isBelowDEL)
        guard !ascii else { return nil }
        return jsonEscaped(String(decoding: json, as: UTF8.self))
    }

    /// `text` with each control and invisible character written as
    /// `\u{XX}` and each backslash doubled, so what was there stays visible
    /// and unambiguous (`invoice\u{202e}fdp.exe`, not a name that reads as
    /// `invoiceexe.pdf`).
    ///
    /// `doublingBackslashes: false` only makes the text safe to show, for
    /// messages that may already hold such escapes (an error naming a file's
    /// escaped context), where doubling would garble them.
    ///
    /// `escapingIgnorables`: every default-ignorable code point too (the joiners, variation selectors, the
    /// combining grapheme joiner, Hangul fillers), for text that is compared byte for byte rather than read
    /// as prose: a file's context (`file\u{200d}` read as a second `file`: the reviews).
    public static func escaped(_ text: String, doublingBackslashes: Bool = true, escapingIgnorables: Bool = false)
        -> String
    {
        var out = ""
        for scalar in text.unicodeScalars {
            if isUnsafe(scalar) || (escapingIgnorables && scalar.properties.isDefaultIgnorableCodePoint) {
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else if scalar == "\\", doublingBackslashes {
                out += "\\\\"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Whether every byte is below DEL (what `jsonEscaped` writes out is DEL or past ASCII).
    private static func isBelowDEL(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        for byte in bytes where byte >= 0x7F { return false }
        return true
    }
}
