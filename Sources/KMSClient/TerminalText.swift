/// Text from elsewhere (a server, a file's unauthenticated header) shown on
/// a terminal: control characters could clear the screen, recolour it or
/// forge lines of output.
public enum TerminalText {
    /// C0 controls, DEL and C1 controls.
    public static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }

    /// Characters that change how the text around them reads without
    /// showing themselves: format characters (bidi overrides, zero-width
    /// joiners, the BOM, tags) and the line and paragraph separators.
    public static func isInvisible(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .format, .lineSeparator, .paragraphSeparator: true
        default: false
        }
    }

    /// `text` with each control and invisible character written as
    /// `\u{XX}` and each backslash doubled, so what was there stays visible
    /// and unambiguous (`invoice\u{202e}fdp.exe`, not a name that reads as
    /// `invoiceexe.pdf`).
    public static func escaped(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            if isControl(scalar) || isInvisible(scalar) {
                out += "\\u{" + String(scalar.value, radix: 16) + "}"
            } else if scalar == "\\" {
                out += "\\\\"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
