import ArgumentParser

/// The process entry: core dumps go off before any command reads a key.
@main
enum Entry {
    static func main() async {
        CoreDumps.disable()
        await KMSCommand.main()
    }
}
