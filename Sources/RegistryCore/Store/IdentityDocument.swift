/// An identity as the API returns it: the stored canonical JSON (already Azure's Device or
/// Module shape) with its sealed keys opened in place, and its etag.
///
/// Splicing the two key values is much cheaper than parsing and re-encoding the document, which
/// the GET benchmark showed as the largest cost of a read.
public struct IdentityDocument: Sendable, Hashable {
    public let json: [UInt8]
    public let etag: String
    /// Where `json`'s `twin` member lies (`StoredIdentityLayout.twinMember`), found when the
    /// document was read.
    package let twinMember: Range<Int>?

    /// A document as stored (canonical); the twin member is found by walking it.
    public init(json: [UInt8], etag: String) {
        self.init(json: json, etag: etag, twinMember: StoredIdentityLayout(json, reading: .document)?.twinMember)
    }

    /// A document whose twin member a reader already found (the backends' GET path).
    package init(json: [UInt8], etag: String, twinMember: Range<Int>?) {
        self.json = json
        self.etag = etag
        self.twinMember = twinMember
    }

    /// Azure's Device or Module JSON: `json` without the `twin` member (our twin tags, served by
    /// `/twins`).
    public var identityJSON: [UInt8] { StoredIdentityLayout.identityJSON(json, twinMember: twinMember) }
}
