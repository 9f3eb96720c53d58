extension Duration {
    /// The duration in seconds, as a `Double`: what every rate in `kms bench` divides by.
    var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
