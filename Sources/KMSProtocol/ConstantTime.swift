/// Comparisons of secrets (signatures, MACs) whose time does not depend on
/// where the first difference is.
public enum ConstantTime {
    /// Equal bytes; the length is not secret.
    public static func equal(_ a: some Sequence<UInt8>, _ b: some Sequence<UInt8>) -> Bool {
        let (x, y) = (Array(a), Array(b))
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    public static func equal(_ a: String, _ b: String) -> Bool { equal(a.utf8, b.utf8) }
}
