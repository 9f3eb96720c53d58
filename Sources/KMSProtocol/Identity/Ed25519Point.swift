/// Whether 32 bytes decode to a point of the Ed25519 curve (RFC 8032
/// section 5.1.3), which swift-crypto does not check when it takes a raw
/// public key: half of all 32-byte strings are no point, and a client
/// enrolled with one could never sign a key exchange. Public keys only, so
/// nothing here needs to run in constant time.
///
/// −x² + y² = 1 + d·x²·y² has a solution x for a given y exactly when
/// (y² − 1) / (d·y² + 1) is a square mod p = 2^255 − 19 (d·y² + 1 is never
/// zero, because −1/d is not a square); Euler's criterion decides that with
/// one exponentiation, and u/v is a square exactly when u·v is.
enum Ed25519Point {
    /// Field elements mod p as four little-endian 64-bit limbs, always reduced (< p).
    typealias Element = [UInt64]

    static let p: Element = [0xFFFF_FFFF_FFFF_FFED, .max, .max, 0x7FFF_FFFF_FFFF_FFFF]
    /// d = −121665 / 121666 mod p.
    static let d: Element = [
        0x75EB_4DCA_1359_78A3, 0x0070_0A4D_4141_D8AB, 0x8CC7_4079_7779_E898, 0x5203_6CEE_2B6F_FE73,
    ]
    /// (p − 1) / 2 = 2^254 − 10, Euler's exponent.
    static let halfOrder: Element = [0xFFFF_FFFF_FFFF_FFF6, .max, .max, 0x3FFF_FFFF_FFFF_FFFF]
    static let one: Element = [1, 0, 0, 0]

    /// True when `encoding` (32 bytes, y little-endian with x's sign in the top
    /// bit) is canonical (y < p) and names a curve point; x = 0 with the sign
    /// bit set is not canonical either.
    static func isOnCurve(_ encoding: [UInt8]) -> Bool {
        guard encoding.count == 32 else { return false }
        var y: Element = [0, 0, 0, 0]
        for index in 0..<32 {
            let byte = index == 31 ? encoding[index] & 0x7F : encoding[index]
            y[index / 8] |= UInt64(byte) << UInt64(8 * (index % 8))
        }
        guard isLess(y, p) else { return false }
        let ySquared = multiply(y, y)
        let u = subtract(ySquared, one)
        let v = add(multiply(d, ySquared), one)
        let uv = multiply(u, v)
        if uv == [0, 0, 0, 0] { return encoding[31] & 0x80 == 0 }
        return power(uv, halfOrder) == one
    }

    static func isLess(_ a: Element, _ b: Element) -> Bool {
        for index in stride(from: 3, through: 0, by: -1) where a[index] != b[index] {
            return a[index] < b[index]
        }
        return false
    }

    /// a + b or a − b over four limbs, with the carry or borrow out (dropped,
    /// the result is arithmetic mod 2^256). At most one of the two steps of a
    /// limb overflows, so the carry or borrow is 0 or 1.
    private static func limbwise(
        _ a: Element, _ b: Element, _ step: (UInt64, UInt64) -> (partialValue: UInt64, overflow: Bool)
    ) -> (Element, out: Bool) {
        var result: Element = [0, 0, 0, 0]
        var carry: UInt64 = 0
        for index in 0..<4 {
            let first = step(a[index], b[index])
            let second = step(first.partialValue, carry)
            result[index] = second.partialValue
            carry = first.overflow || second.overflow ? 1 : 0
        }
        return (result, carry != 0)
    }

    private static func addLimbs(_ a: Element, _ b: Element) -> (Element, carry: Bool) {
        let (sum, carry) = limbwise(a, b) { $0.addingReportingOverflow($1) }
        return (sum, carry)
    }

    private static func subtractLimbs(_ a: Element, _ b: Element) -> (Element, borrow: Bool) {
        let (difference, borrow) = limbwise(a, b) { $0.subtractingReportingOverflow($1) }
        return (difference, borrow)
    }

    /// Brings any value below 2^256 into [0, p): 2^256 = 2p + 38, so at most two subtractions.
    private static func reduced(_ a: Element) -> Element {
        var value = a
        while !isLess(value, p) { value = subtractLimbs(value, p).0 }
        return value
    }

    static func add(_ a: Element, _ b: Element) -> Element {
        // Both below p < 2^255, so the sum has no carry out.
        reduced(addLimbs(a, b).0)
    }

    static func subtract(_ a: Element, _ b: Element) -> Element {
        let (difference, borrow) = subtractLimbs(a, b)
        // a − b + p, taken mod 2^256, is the true value when a < b.
        return borrow ? addLimbs(difference, p).0 : difference
    }

    static func multiply(_ a: Element, _ b: Element) -> Element {
        var wide = [UInt64](repeating: 0, count: 8)
        for i in 0..<4 {
            var carry: UInt64 = 0
            for j in 0..<4 {
                // a·b + t + carry < 2^128, so the high half never overflows.
                let (high, low) = a[i].multipliedFullWidth(by: b[j])
                let (partial, overflow1) = wide[i + j].addingReportingOverflow(low)
                let (total, overflow2) = partial.addingReportingOverflow(carry)
                wide[i + j] = total
                carry = high &+ (overflow1 ? 1 : 0) &+ (overflow2 ? 1 : 0)
            }
            wide[i + 4] = carry
        }
        // 2^256 = 38 mod p: fold the high half in, then the few bits that carry out of that.
        var folded: Element = [0, 0, 0, 0]
        var carry: UInt64 = 0
        for index in 0..<4 {
            let (high, low) = wide[index + 4].multipliedFullWidth(by: 38)
            let (partial, overflow1) = wide[index].addingReportingOverflow(low)
            let (total, overflow2) = partial.addingReportingOverflow(carry)
            folded[index] = total
            carry = high + (overflow1 ? 1 : 0) + (overflow2 ? 1 : 0)
        }
        var (result, wrapped) = addLimbs(folded, [carry * 38, 0, 0, 0])
        if wrapped { result = addLimbs(result, [38, 0, 0, 0]).0 }
        return reduced(result)
    }

    static func power(_ base: Element, _ exponent: Element) -> Element {
        var result = one
        for bit in stride(from: 255, through: 0, by: -1) {
            result = multiply(result, result)
            if (exponent[bit / 64] >> UInt64(bit % 64)) & 1 == 1 { result = multiply(result, base) }
        }
        return result
    }
}
