/// Where things are in a file of a given size (section 5): the arithmetic of
/// random access, checked before any chunk is read.
public struct FileLayout: Sendable, Equatable {
    /// H.
    public let headerLength: Int
    /// F.
    public let fileSize: UInt64
    /// n: the number of pieces after the commitment.
    public let chunkCount: UInt64

    /// The layout checks of section 5 (after steps 1 to 3): no payload, or a
    /// last piece shorter than a tag, is `truncated`.
    public init(headerLength: Int, fileSize: UInt64) throws(FileFormatError) {
        try self.init(piecesOf: headerLength, fileSize: fileSize)
        guard length(ofChunk: chunkCount - 1) >= FileFormat.tagSize else {
            throw FileFormatError(.truncated, "the file ends inside its last chunk's tag")
        }
    }

    /// The pieces only, without the last piece's length check: a whole-file
    /// read opens the pieces in order (section 4), so a full final chunk
    /// followed by a few bytes is `trailing_data`, as when streaming.
    init(piecesOf headerLength: Int, fileSize: UInt64) throws(FileFormatError) {
        self.headerLength = max(0, headerLength)
        self.fileSize = fileSize
        let start = UInt64(self.headerLength + FileFormat.commitmentSize)
        guard fileSize > start else { throw FileFormatError(.truncated, "the file has no chunk") }
        let sealed = UInt64(FileFormat.sealedChunkSize)
        chunkCount = (fileSize - start + sealed - 1) / sealed
    }

    /// Where piece `index` starts.
    public func offset(ofChunk index: UInt64) -> UInt64 {
        UInt64(headerLength + FileFormat.commitmentSize) + index * UInt64(FileFormat.sealedChunkSize)
    }

    /// How many bytes piece `index` has on disk.
    public func length(ofChunk index: UInt64) -> Int {
        Int(min(fileSize, offset(ofChunk: index + 1)) - offset(ofChunk: index))
    }

    /// S = L − 16n: authentic only once the last chunk opened as final.
    public var plaintextSize: UInt64 {
        fileSize - UInt64(headerLength + FileFormat.commitmentSize) - UInt64(FileFormat.tagSize) * chunkCount
    }

    /// An inclusive plaintext range, END clamped to the end; START at or past
    /// the end is `range_not_satisfiable`. Call once the last chunk opened.
    public func clamp(start: UInt64, end: UInt64) throws(FileFormatError) -> ClosedRange<UInt64> {
        guard start <= end else { throw FileFormatError(.rangeInvalid, "the range must have START <= END") }
        guard start < plaintextSize else {
            throw FileFormatError(
                .rangeNotSatisfiable, "the range starts at or past the plaintext's end (\(plaintextSize) bytes)")
        }
        return start...min(end, plaintextSize - 1)
    }

    /// The chunks holding a plaintext range.
    public func chunks(holding range: ClosedRange<UInt64>) -> ClosedRange<UInt64> {
        let size = UInt64(FileFormat.chunkSize)
        return (range.lowerBound / size)...(range.upperBound / size)
    }
}
