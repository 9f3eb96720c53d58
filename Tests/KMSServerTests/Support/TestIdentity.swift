import Foundation
import KMSCore

/// The server identity every `TestServer` of a run shares: a fixed RSA-4096 key (PKCS#1 DER, made once with
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

    /// Another identity than the test servers' (`ClientTests.impostorIdentity`), fixed for the same reason.
    static let impostorDERBase64 = [
        "MIIJKAIBAAKCAgEArOSh4+4hfPLs7AXgY61wu0d5/EnjZNha5W2Arf4XiuZG9564QSma0NoXhUUGqXOv5prpzEAFqKp2Ww75",
        "o29/SEbOkiZMK9dRYKNv1IFZK2YPk9hhq7oA6cgFAnwLSOOVeHtiPuuggZn35EcCVpQO/fLAfRPlyiKjP9av2Qpe+KeRLN92",
        "IXmTI/pG1KZbCrPNQAoVXiCcuLs8X1z94c1dAb3JDhVD6uR5NlzeqM9ccEPE9/tykkE+v9S8ugog82Ci8gUHN4VbyMWVpANh",
        "sZMdtLBxWT/CnF1lOzYWvW4sHjX53UoaUUi1d+ojyBFwiLwI65magQrDvprnCahj5qhutPL+7CMBKjkRs6hYw+WbkUdVqOCN",
        "zyK2O6uiirBR45MgxMSyut4RUghZc3Kx+1gwBrsJLFvm34RHsKfFWx548t/oPSBKD+SMbYxYSBvMNPAAgJfk40PGMCQXM/RA",
        "kq0fUBHeSVuvCcCqmk/zCsBD5+7ZWVxWEMgG0UIVhevt/JdR7K1TCXg26wgHm2E1+n8uHz277pDQHrvpZgZidlQMSG3KcOwW",
        "V+AMsUPgTKJMbnqwumCmKHF0/SpkP5Nw+KCkG/81dYuinbIYhhptE+cIsVb6MEZczi5K9r96EGKPX0AI16d/7ohNm7G2L15B",
        "XXNVojVI6D8ayK0rY0mHJL7y5a8CAwEAAQKCAf8G+u3wf7kA+P7oZXdo2/gxLj+ZuZoQtZnrWLNHv8CVxDuM+908aRSrM16H",
        "nvLmyG7/Mtw6E+tpMsJHXpfKnXhoQ0X7N1wCfifvwKJ0S1fjUd6cSM29ubT0jbrTozx2OGXVu83XrnOPHB26KXDpdyJYa4RZ",
        "+J+EwAfTvtVsMjVZvBmEUlOzgQW0JkHK3Nd795HKzbz6EaQmHlCIB1ppxSUretsAGoCCJxXyUkhI2SDghwJ8kFfj/HS37suM",
        "vkwpjk7GtcTuPwyk8KXgHh/D0bc8fYD2dmmwaDDyeu2oNngTRW7Ey8qi5rCI9AHR+zZulPDDv+VRKdY0iWencaT5FfpXqH4E",
        "EI3/149I+d53nfKRoZi2Cp3ldwDU4EWP1sxoQsXcbf+Q6qxwiPSBMWXAGQvANSJnUTyJ/te764sMFyKAEW8tdkl0rTyfjwjG",
        "CVyttTbP1nOBlZXpD7tK3uBnksn22lwBirFPHzTBKm+7+3WkYVN41iNxp7JiSeo3pRKY/UzW69p6PHCIjf5D3D5ibUX3sBu9",
        "Qkv5qU+8zSLiTWuefrzSgsXK98l+rc0AfcJjgVRKX152Bmnq6kwPgIDXVj0+1RW2iT8XSCegL0MesMLQOxIkKSFApipOs8qw",
        "gjP5f2AcraEXwrZelLHUiSbmtwf9tvrKex1eWj/l2byVhVI9AoIBAQDqMxCizIM1dkZmEsYyf8YBexyhzehDr5MuFJgPNrLb",
        "ZjVUNyq7bBWsFT1DeRaNCWpTqnU9fAmOzr2Fc2XTdqPt4kTg6evYasmzRm9mA92ZTepN1VZcRlPFFn5iSRsS3bp4pTpEEWXp",
        "11S/79617nhVK82WKuVzVgYG+/szN01G48YUbZGrWe3YhxQmraNrlMpXaL86SZVOmsjebr6FEIfUsqnsp2TXE8NgymKNK/A5",
        "O96csnXXF8JtaCU9vXN3JE8C+PHm5/y50Bm/23F7peF7euaCYMpNUrtcmVM6wmIKCnJYgEjFhTo7ayLj9YIVYbPkvUS2i8MK",
        "tfb3QmSo5FB7AoIBAQC8/KV//BmKXxtzYze6I5M0L2AcgKLbEPXJNGI6iPWRgZfS+DCxUkZLBqpKE3KRFldbHVy0T4Rhae7/",
        "+IO2zwjx8qbWu5S/F1Nowwqyw1owIboovZMmXxRyDHiCace6clvL5469s6gYGrNGvjmW6+My+wEMCsaVknp/MPje/w7QrBEq",
        "QYynun3Akg5VdY2ND6XvIhfR0KPpLKThc3RHsuFmA98K0tC+5E5pQBbC/iTqSZGM79ivG/oY39zPHYjIKkt3XVHTMtD1QAZN",
        "DxjRwDFFVzK6C5E97/p3qb0Cw+ed+HVIg14DUvxiNrBAChE37aPahDPdAVx1HqNaIjwrZytdAoIBAQCDWWh3JeRg05jgHp9y",
        "Kx9OLVH9nZIqhAozyfEOd0sQqd43AUnCG/h7rt3RPdRb/W/YxL1EYpCpu2GnuvTdCKkf/ctLqWZQ1nORTGul930NQhmq1X+9",
        "+ON6ogb38LBygFDY4TIwguF5qP8rNsjdmIV8nziKhDxz10dCG4jjTJzWqWCqjFkqlSFEU14F41TIPYbORz0Y37QRhdYqikno",
        "L0E/FYUf6TIxPjBR1LA5JO9x6hYMJDrbC8RLwCFC40IjDAYUULK7IlknjYMji1u2UW6I5oDplodfnoregE+hoOuDXiCLakdm",
        "IDZspMXIvCTdARL3sv8asoANPcjpHB+AaayJAoIBAQCJMAWb0I9hyQSOUJnlf2meWj20sxSFXdxuAJ7FyyIoTCDAPvZp4kWw",
        "tNftCg0CkWs8cyYWphp89H9QRUCn9caSjAjcnDKwPOiJhfxAJFtV0UXnySYGlsKqv67DTLJ2AAnvDNqrjr0ZMlito+z+R6IY",
        "IelyqmfZsAlIR26Bwjko9Z9IQ2ktYM1keyH4m2rz2UYlP2R3JLO30namSj9AxPOmMG062Co8SFM7SBC93+tAP8NuwbVT+EUm",
        "xWru1ouycjFyJsX9QEg7oAxy5+CmcpPRuCjUsQzwH0J8lzTjyv5ZyECrMOGQHC+lw/lRo304UkO9nnZfmltZkbIW/f8bqrrp",
        "AoIBAAYN7N6Zz4ghcTr4CKWL/hEf+Uu0nYsDIfn9ob8XW82v+fNRYc89BFfsX1Usc/p7OlfUCl4F8pXBCDa8P9HxXoCBlw7I",
        "WDJCB6tR/cHjT8oyineM83rU/gdLZxJKG0l/5wAPU2EPbJGilczwPsiGy8KIigpB3ryRBrGuakjKg3abctcWS8gz4sIQPdsU",
        "2EGxgIPmkwfWYXxbf+h78FZBNaW4ijW9Rhzb/ykd2OwY2Ml6TBaO2mT+IAKnObUa14TPqt5rnEPccgt7LkxNd91uKeiIOE2j",
        "mjOXQCk2L1mSBlfdBQ1p2zaUCAHhgAwi19959ZuzrDjTVAKrllbXFVHcsTM=",
    ].joined()

    static func load(_ base64: String = derBase64) -> IdentityKey {
        do {
            guard let der = Data(base64Encoded: base64) else { throw KMSError.internal("not base64") }
            return try IdentityKey.load(der: der)
        } catch {
            preconditionFailure("the test identity key does not load: \(error)")
        }
    }
}
