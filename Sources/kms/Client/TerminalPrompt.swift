import ArgumentParser
import CProcessHardening
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A yes/no question asked on the controlling terminal, as `ssh` asks about
/// a new host key: on `/dev/tty`, so that standard input and output can
/// carry data while a person answers.
enum TerminalPrompt {
    /// Whether a person can be asked: standard error is a terminal and the
    /// controlling terminal opens. (A terminal with no one at it waits for
    /// an answer that never comes.)
    static var isInteractive: Bool {
        guard isatty(STDERR_FILENO) == 1 else { return false }
        let fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }

    /// The longest line Linux's terminal keeps, with its line end (N_TTY_BUF_SIZE - 1).
    static let terminalLine = 4_095

    /// One line typed at the terminal on standard input, not echoed, without
    /// its line end; nil when standard input is not a terminal. A secret
    /// typed there stayed on the screen, with its newline made part of it (a
    /// review finding).
    static func readHidden(_ prompt: ShownText, limit: Int) throws -> Data? {
        // Ctrl-C (or a closed terminal) while the echo is off would leave the shell typing blind: the
        // C handlers put the terminal back before the process ends with the usual status.
        guard isatty(STDIN_FILENO) == 1 else { return nil }
        switch kms_hide_input(STDIN_FILENO) {
        case 0: break
        case -2:
            // In the background its settings would be the shell's, and reading gets EIO (a review).
            throw CLIFailure(
                message:
                    "kms encrypt is not in the terminal's foreground (started with &, or under timeout or setsid): run it in the foreground to type the plaintext (nothing was sent)"
            )
        default: return nil
        }
        defer {
            kms_show_input()
            writeToStandardError("\n")
        }
        writeToStandardError(prompt)
        var line = Data()
        var byte: UInt8 = 0
        while true {
            let count = read(STDIN_FILENO, &byte, 1)
            if count < 0, errno == EINTR { continue }
            // A failed read is not the end of the plaintext: encrypting the part read would succeed
            // with less than was typed (a review; an orphaned background job reads EIO).
            if count < 0 {
                throw CLIFailure(message: "io_error: the terminal could not be read (nothing was sent)")
            }
            // Nor is the end of input (Ctrl-D, a dropped connection with SIGHUP ignored): only Enter ends
            // the plaintext, so a line cut short is never encrypted as if it were whole (a review).
            if count == 0 {
                throw CLIFailure(
                    message: "the input ended before Enter: nothing was sent (end the plaintext with Enter)")
            }
            guard byte != UInt8(ascii: "\n") else { break }
            line.append(byte)
            // The terminal keeps at most 4,095 bytes of a line and drops the rest without a word (a
            // review pasted 5,000 bytes and got 4,095 encrypted): a line that long is refused.
            guard line.count < min(limit, Self.terminalLine) else {
                throw ValidationError(
                    "a typed line must be shorter than \(Self.terminalLine) bytes: give a longer plaintext on standard input or with --file (nothing was sent)"
                )
            }
        }
        // More than one line pasted: the first alone is not what was meant (a PEM block, a password with a
        // trailing line), and the rest is discarded when the echo comes back (a review). What arrives in
        // the next 0.2 s counts too, a last line without its line end and a paste delivered in pieces
        // included (a later review); line ends alone (CR LF) do not.
        guard kms_more_input(STDIN_FILENO, 2) <= 0 else {
            throw CLIFailure(
                message:
                    "more than one line was pasted: nothing was sent (the prompt takes one line; give a longer plaintext on standard input or with --file)"
            )
        }
        // A control character (Ctrl-Z, now an ordinary key here, or another) is not text a person meant to
        // type: refused, where it would have become part of the secret unseen.
        guard !line.contains(where: { ($0 < 0x20 && $0 != UInt8(ascii: "\t")) || $0 == 0x7F }) else {
            throw CLIFailure(
                message:
                    "the typed line holds a control character (Ctrl-Z?): nothing was sent; type the plaintext again")
        }
        return line
    }

    /// `question` on the terminal, then true for `y` or `yes` (any case) and
    /// false for anything else, end of input (Ctrl-D) and a failed read
    /// included; nil only when there is no terminal to ask on.
    static func confirm(_ question: ShownText) -> Bool? {
        guard isatty(STDERR_FILENO) == 1 else { return nil }
        let fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let bytes = Array(question.text.utf8)
        guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count else { return false }
        // The whole line is read, however long, so nothing of a pasted answer is left for the shell to run
        // after this process (a review pasted a fingerprint and a command); only its start is kept.
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let count = read(fd, &byte, 1)
            if count < 0, errno == EINTR { continue }
            guard count == 1 else { return false }
            if byte == UInt8(ascii: "\n") { break }
            if line.count < 16 { line.append(byte) }
        }
        let answer = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespaces).lowercased()
        return answer == "y" || answer == "yes"
    }
}
