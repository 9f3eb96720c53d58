/// Shared by the stores' restores.
public enum BackupRestore {
    /// A backup's client line as a store row: the sealed record as it was,
    /// its lookup hints read from inside it.
    public static func storedClient(_ client: BackupContents.Client, masterKey: MasterKey) throws(KMSError)
        -> StoredClient
    {
        guard let record = ClientRegistry.open(sealed: client.sealed, clientId: client.clientId, masterKey: masterKey)
        else { throw BackupContents.unopened("client \(client.clientId)") }
        return ClientRegistry.stored(sealed: client.sealed, record: record)
    }
}
