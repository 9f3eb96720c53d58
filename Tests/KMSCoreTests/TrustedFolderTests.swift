import Foundation
import KMSCore
import Testing

/// `DurableFile.untrustedFolder`: what `kms serve` refuses to start on for its store and master key (a
/// review made `data/` as another user, mode 777, with a master key it chose), and what it must still
/// accept: a sticky folder every user may write that already holds this user's key, as a Kubernetes
/// secret volume is (root-owned, 1777; the diff review found those refused).
@Suite struct TrustedFolderTests {
    @Test func foldersOthersMayWriteAreRefusedUnlessStickyAndHoldingTheKey() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kms-trust-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let key = folder.appendingPathComponent("master.key")
        #expect(chmod(folder.path, 0o700) == 0)
        #expect(DurableFile.untrustedFolder(folder, holding: key) == nil)
        #expect(chmod(folder.path, 0o777) == 0)
        #expect(DurableFile.untrustedFolder(folder)?.contains("is mode 777") == true)
        #expect(DurableFile.untrustedFolder(folder, holding: key)?.contains("is mode 777") == true)
        // Sticky: trusted for a key already there and ours, not for one still to be made.
        #expect(chmod(folder.path, 0o1777) == 0)
        #expect(DurableFile.untrustedFolder(folder, holding: key)?.contains("is mode 1777") == true)
        #expect(FileManager.default.createFile(atPath: key.path, contents: Data("k".utf8)))
        #expect(DurableFile.untrustedFolder(folder, holding: key) == nil)
        #expect(DurableFile.untrustedFolder(folder)?.contains("is mode 1777") == true)
        // Another user's folder, whatever its mode, and another user's key in a sticky one.
        if geteuid() == 0 {
            // Another user's link to our key, in the sticky folder: theirs to repoint (the final review).
            let target = folder.appendingPathComponent("ours.key")
            #expect(FileManager.default.createFile(atPath: target.path, contents: Data("k".utf8)))
            let link = folder.appendingPathComponent("linked.key")
            try FileManager.default.createSymbolicLink(at: link, withDestinationURL: target)
            #expect(DurableFile.untrustedFolder(folder, holding: link) == nil)
            #expect(lchown(link.path, 1234, 1234) == 0)
            #expect(DurableFile.untrustedFolder(folder, holding: link)?.contains("is mode 1777") == true)
            #expect(chown(key.path, 1234, 1234) == 0)
            #expect(DurableFile.untrustedFolder(folder, holding: key)?.contains("is mode 1777") == true)
            #expect(chmod(folder.path, 0o700) == 0 && chown(folder.path, 1234, 1234) == 0)
            #expect(DurableFile.untrustedFolder(folder)?.contains("belongs to uid 1234") == true)
        }
        // Not a folder, or missing: nothing to judge (a missing one is made 0700).
        #expect(DurableFile.untrustedFolder(folder.appendingPathComponent("absent")) == nil)
    }

    /// The way to the folder: a `0700` folder under one every user may write (not sticky), or another
    /// group's members (a review), or under another user's, is theirs to rename and replace between two starts; a link on the way that another
    /// user owns is theirs to repoint. Folders still to be made are skipped; `/tmp`'s sticky bit is trusted.
    @Test func foldersAboveThatOthersControlAreFound() throws {
        let top = FileManager.default.temporaryDirectory.appendingPathComponent("kms-above-\(UUID().uuidString)")
        let data = top.appendingPathComponent("data")
        let keys = data.appendingPathComponent("keys")
        try FileManager.default.createDirectory(at: keys, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: top) }
        #expect(DurableFile.untrustedAncestor(of: keys) == nil)
        #expect(DurableFile.untrustedAncestor(of: keys.appendingPathComponent("not/yet/made")) == nil)
        #expect(chmod(top.path, 0o777) == 0)
        // (The message names the folder as found: on macOS /private/var/…, not /var/….)
        #expect(DurableFile.untrustedAncestor(of: keys)?.contains(", above \(keys.path)") == true)
        #expect(
            DurableFile.untrustedAncestor(of: keys.appendingPathComponent("not/yet"))?.contains("is mode 777") == true)
        // A link of ours in that folder, to a folder we trust: the folder holding the link is judged too (the
        // diff review: only where links lead was, so anyone could swap the link).
        let trusted = FileManager.default.temporaryDirectory.appendingPathComponent("kms-real-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: trusted, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: trusted) }
        let swappable = top.appendingPathComponent("kms")
        try FileManager.default.createSymbolicLink(at: swappable, withDestinationURL: trusted)
        #expect(DurableFile.untrustedAncestor(of: trusted.appendingPathComponent("keys")) == nil)
        #expect(
            DurableFile.untrustedAncestor(of: swappable.appendingPathComponent("keys"))?.contains("is mode 777")
                == true)
        #expect(chmod(top.path, 0o1777) == 0)
        #expect(DurableFile.untrustedAncestor(of: keys) == nil)
        // Group-writable by the user's own primary group (a user-private group): not another user's way in.
        #expect(chmod(top.path, 0o775) == 0)
        #expect(DurableFile.untrustedAncestor(of: keys) == nil)
        #expect(chmod(top.path, 0o755) == 0)
        if geteuid() == 0 {
            // Group-writable by another group (Debian's /var/local is 2775 root:staff): its members can swap it.
            #expect(chown(top.path, 0, 1234) == 0 && chmod(top.path, 0o2775) == 0)
            #expect(DurableFile.untrustedAncestor(of: keys)?.contains("is mode 2775 and group 1234's") == true)
            // Not for the audit log's folder (Ubuntu's /var/log is 0775 root:syslog), nor root's group.
            #expect(DurableFile.untrustedWay(to: keys, judgingGroups: false) == nil)
            #expect(chown(top.path, 0, 0) == 0 && chmod(top.path, 0o2775) == 0)
            #expect(DurableFile.untrustedAncestor(of: keys) == nil)
            #expect(chmod(top.path, 0o1775) == 0)
            #expect(DurableFile.untrustedAncestor(of: keys) == nil)
            #expect(chmod(top.path, 0o755) == 0)
            #expect(chown(top.path, 1234, 1234) == 0)
            #expect(DurableFile.untrustedAncestor(of: keys)?.contains("belongs to uid 1234") == true)
            // Judged where the path leads, too: a link of ours to a folder under another user's.
            let link = FileManager.default.temporaryDirectory.appendingPathComponent("kms-link-\(UUID().uuidString)")
            try FileManager.default.createSymbolicLink(at: link, withDestinationURL: data)
            defer { try? FileManager.default.removeItem(at: link) }
            #expect(
                DurableFile.untrustedAncestor(of: link.appendingPathComponent("keys"))?.contains("uid 1234") == true)
            #expect(chown(top.path, 0, 0) == 0)
            #expect(DurableFile.untrustedAncestor(of: link.appendingPathComponent("keys")) == nil)
            // Another user's link on the way, or as the folder's own name: theirs to repoint (the second diff
            // review: the name itself was left to `untrustedFolder`, which follows it).
            #expect(lchown(link.path, 1234, 1234) == 0)
            #expect(DurableFile.untrustedAncestor(of: link)?.contains("is a link that belongs to uid 1234") == true)
            #expect(
                DurableFile.untrustedAncestor(of: link.appendingPathComponent("keys"))?.contains(
                    "is a link that belongs to uid 1234") == true)
        }
    }
}
