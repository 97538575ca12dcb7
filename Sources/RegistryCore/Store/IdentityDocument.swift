/// An identity as the API returns it: the stored canonical JSON (already Azure's Device or
/// Module shape) with its sealed keys opened in place, and its etag.
///
/// Splicing the two key values is much cheaper than parsing and re-encoding the document, which
/// the GET benchmark showed as the largest cost of a read.
public struct IdentityDocument: Sendable, Hashable {
    public var json: [UInt8]
    public var etag: String

    public init(json: [UInt8], etag: String) {
        self.json = json
        self.etag = etag
    }

    /// Azure's Device or Module JSON: `json` without the `twin` member (our twin tags, served by
    /// `/twins`). In canonical order `twin` is always the last member, and its first occurrence
    /// is the top-level one (a tag named `twin` sits inside it), so cutting from there to the
    /// closing brace removes exactly it.
    public var identityJSON: [UInt8] {
        guard let at = ByteSearch.first(Projections.twinMember, in: json) else { return json }
        return Array(json[..<at]) + [UInt8(ascii: "}")]
    }
}
