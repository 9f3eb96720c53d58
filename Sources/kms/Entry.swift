import ArgumentParser
import Foundation

/// The process entry: core dumps go off before any command reads a key, and
/// a closed pipe becomes a write error that is reported (EPIPE), not a
/// silent SIGPIPE death before the first socket (NIO ignores it from then on).
@main
enum Entry {
    static func main() async {
        CoreDumps.disable()
        signal(SIGPIPE, SIG_IGN)
        await KMSCommand.main()
    }
}
