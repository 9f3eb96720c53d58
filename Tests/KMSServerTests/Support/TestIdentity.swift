import Foundation
import KMSCore

/// The server identity every `TestServer` of a run shares: a fixed RSA-4096 key (PKCS#8 DER, made once with
/// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -outform DER`), used by tests only. It was
/// generated at the run's start, inside a lazy `static let` that every early test waited on, blocking
/// threads of the cooperative pool for seconds (tens under a loaded suite) while timing-sensitive tests ran
/// beside it (a review of the suite's timing).
enum TestIdentity {
    static let derBase64 = [
        "MIIJKAIBAAKCAgEA0fxPR/UUBrKgE4CUc9nLikloalfYyLld4akiSRteWtXJ2yjWjT8M3Zm/JadeRVwmpA4/A7WzMjGmvmho",
        "DuTfzDXIYWSw3yLq4nU/fg3+a/V7X4xaGp1tcGKYHFvW3nHNVWFXJzVUCulmci8j+1IZFbl4b0eNuDMXxmMs9QP6xSOhwuuH",
        "Y7pterREaB/jO7TGrEhXkfgdec9IlqY7jwtvYpnDMaUStJXKELlmisccio2bHYRZnEfhdXEB25dMq3oPSeQ042MjJVIRGPTe",
        "0aTj+rMLfW3gIj7YSJNVMGJgKAEzhLjUTkVXkF07Hlpq4gBnrN5DSbkOUSxlixxBklWZz3KwnLq7/cELfrTCn5z0ag+8I7UA",
        "HkDGiWpSoSq4Aa4ykTTqxg0/bcgK6iu7A2VfxRBZjbrjLgpfo33SV1GhsxMgtUDA2wSeasaU6aV9rZaWNc9pyLhZBYvldA4j",
        "bjbaufzLLPqqx6T6ShZEbwY+tfM77dqRrQGpLHJpmNrUx+d7wzcO4upBLIfMG0UQ6YbILuqxoK8Rp+jL2vQMiKLGNK4HqfhK",
        "Ux3G4S+aBHqkBd0HUHERWnKavY0ip8JjRxyHilqUzl+2cVQRmErFxUH+OmvRLXPUYfJFd2CmKpaLdmeiXh94DfpQ4PjnMqWP",
        "MQzie1GfJTPSdIdEXuK9bCvNXi8CAwEAAQKCAgBDw1VeVkNhKfGoeXzuqeEaPjg44SJvHAqk0OzkhLV9QLKES/h42ljvhjb+",
        "ErXEUkmR9Zr2OoOadhVmKtExxUBHaS/B5jmBuIXuEIItzpxFAJIQsn09S4JOmzKVLDn5zOXDYMc8OuRlJQ7PWFEXQFYiAZlQ",
        "59lfEPXiKo0OgHtDdQ01lsY5M6cyysusgmXVFbBrVmkUDOqOLYsyOnDL55fJTO+FrMyNhC0SGpJxxHF8cNgWvWghm7yxJoe/",
        "8mJmj9wxLzi2DH8CAyrLT/I72ydK9s6FapjC1F79hLYgCA8ZudGDShYRMCVizANQ90K4rgLG8W7rcpGhNl+KddLfQ0p/5nAF",
        "6qgfBYKJO6qnFddJGCSrZgTa0uoBp3ik3NqBaUEg/QEw+d5Ft4DLe0MGkYW49XgqYdjPmLLDXgy2m0j3yVmI2t4GOdKDi+tU",
        "hVsDsRDtTyachDtirpnCVYX//sT7WdZZhIkEC6uaHCs8FyS2QclPbOp5NJHtVsOgeh9vY6RhN1/tTsXVCsdDvKS0yK4sgDXn",
        "+uZb34nyhB+ugRz97LVEDP2+vR2OCcFn25Voas4sMg5HtGGRSKH7xMyRwEz+0OSLU1KzuEW6QQfCkSGnht8uyJs4htR0p91b",
        "MhShd/csRv2loc+4N3YVT4jaLvWeWsWJO2G7RyrKybZ5fldYsQKCAQEA+P/qDKV4kGWTfAK8UYNJkTEzfbhuUE4hi8FAFNQq",
        "a5LMbHASeYV0ByGPkuKRmf9uINYC6MCzc5pULztebSbnG5Mt6iNaC9yKItObNAAdBkHucDk+97vYItJhV95GPiaT4COa8N5Z",
        "a4N5CDzNWqkLLv/ZEnE7XKZtfHvpDiJJSHwRCEiW+0V/n60jeUpJCYGRAJCHSja3W52TDUaZw5e7eaSF2FyaaNcpWPiHiJ4X",
        "19HMJNWO9qA1zTOG6uOSnSl3LJguEwsWMAISd3wUV1sSHG0XZKSeaIB3Aqclmq4jr1k+zwhQIxzF4xojlfsqHXjOA8hEr0mj",
        "0CJZihViQ98RqQKCAQEA1+ObCBKy+VwVfQuIT4RD29XujJ1ExKEqyKrFSAK6g8bNlOAQyBy0prLrc7btz7r/RZaMW6P36emu",
        "7GV03iRbY/UqayuZNPsXaF8YtwAsNCIWr6yKo09YjScnyFzKRcxR/kaSc4N7NFLt3dM9XfXVS8mCN3Qxsgu3b3JmBm/s3mfM",
        "FuoqlsmQjOWlf3zFiW3rE6GJ6JLDQeFbA4TpZyutRSZa0n98/xwakmE3pZE90sYw26rPGHanoXzhWxiLB12Z9zJz4JM084Dy",
        "0WlWXQj/XbO9EaTNL1Ya+zXgcmgrEfLcsET7CTD1UQ+70nwAvWxZKQrwVuNyTP+9wO8sxPmIFwKCAQBsThQlsAvC8wu1kxMK",
        "eYqURsxY0NHayEE7IrGW3bod1FpqiEzg4rVXLLfgcgBW9Y2XZr8ZMkhb7jLT4ITwAU3g5qHAB+Rw6FqFT3lgovP89syZr6y9",
        "4MzgSJXivGHdQrZrddE9F9nZM/R/KsM/veuJY+utY+coI5PX46W5ahxqFNzrt3dEkDQ05gBaD3+5TMwfbL4L/8S9asq9qYnU",
        "U7lN7cvyEkVveLcZZfC98dX5H94l32Yxy/na6aCzpoztI04c7YyM5/OcqioSIrxOSuSTzLeyJRBp8AbT9pQatcf7y1vQfZMt",
        "0qQYZhQ4dmkZLKSfbIrDm8pPC8Hal/aIAw0RAoIBAHoavpW7VcTZw0GdYzRuP584CZs4XCvGaBdlFv3apTlhGOeqL3OvYLGk",
        "Iq2o+ipyvmzScIJoZBDF3ezQmWAHOjV39cz1tMqVdbDPkH/4tgeqfCBSO3uQpin3ynV1neYKYRmrOqvg4q8+dFDxaBUbtM8P",
        "ovnQW0czf0Wmc3QSm+tS08jmGr58NKisPoWzwVowdDP/OqvzTkKVvk9oPkbfGjoxLk8+UilL8O930uxvEIOFGx8zJbzVZ4xb",
        "wG4wnHnHBA0fWRDc0acj+LJenL00GJMb1MUE7BRo5AvPdinfJvUY4p9D9KRHL4jwmC+9eQGqJWekSzkpnX1VbDKSVET4SXMC",
        "ggEBANJsQINkyeSeZhkmcRuBfaWihFmzedCEgQr9Wz1Th8DjCG5xptNvexyKP4sc3ymbbB2EWM/PBWWnmlMJDewRGnMlkpfO",
        "k/asXURvttwu4fgwlXEyrzlawfNExkuGEvlsrFAy/yiNlPTh3ojRTxUEpW0WcQFKNPrP3kH77ZskG11qBWW64awsD6s/FPIZ",
        "NXcxoA9Z3EiKcTCqRNQnImdGzO/pFB2T7xUlN2nIeSwIvvDDTOFa86H11Ov7ergLYyY7UEIUvZ/m5HB1kkdM4rSD8B+gvIYc",
        "0SVu8kWZUrk+Pq0lpfIfWJq17aQDe6+bdBnhfpoWY73m2LFpGOfBA+nze6Y=",
    ].joined()

    static func load() -> IdentityKey {
        do {
            guard let der = Data(base64Encoded: derBase64) else { throw KMSError.internal("not base64") }
            return try IdentityKey.load(der: der)
        } catch {
            preconditionFailure("the test identity key does not load: \(error)")
        }
    }
}
