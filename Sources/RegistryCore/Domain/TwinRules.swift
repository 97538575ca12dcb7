/// Azure's limits on twin tags: a JSON object of at most 8 KB (canonical UTF-8), nested at most
/// 10 levels, keys of 1 to 1,024 bytes without `.`, `$`, space or control characters, string
/// values of at most 4 KB, no arrays.
extension Validation {
    public static let maximumTagsBytes = 8 * 1024
    public static let maximumTagsDepth = 10

    public static func checkTags(_ tags: [String: JSONValue]) throws(RegistryError) {
        try checkObject(tags, path: "tags", depth: 1)
        let size = CanonicalJSON.encode(.object(tags)).count
        guard size <= maximumTagsBytes else {
            throw .invalid("Twin tags take \(size) bytes; the maximum is \(maximumTagsBytes).")
        }
    }

    static func checkObject(_ object: [String: JSONValue], path: String, depth: Int) throws(RegistryError) {
        guard depth <= maximumTagsDepth else { throw .invalid("\(path) is nested deeper than \(maximumTagsDepth) levels.") }
        for (key, value) in object {
            guard !key.isEmpty, key.utf8.count <= 1024,
                !key.unicodeScalars.contains(where: { $0 == "." || $0 == "$" || $0 == " " || $0.value < 0x20 || (0x7F...0x9F).contains($0.value) })
            else {
                throw .invalid("The tag name '\(key)' at \(path) is not allowed: 1 to 1024 bytes, without '.', '$', spaces or control characters.")
            }
            switch value {
            case .object(let inner): try checkObject(inner, path: "\(path).\(key)", depth: depth + 1)
            case .array: throw .invalid("\(path).\(key): arrays are not allowed in tags.")
            case .string(let s) where s.utf8.count > 4096: throw .invalid("\(path).\(key): string values hold at most 4 KB.")
            default: break
            }
        }
    }

    /// JSON merge patch of tags: a `null` removes a key, objects merge key by key, anything else replaces.
    public static func mergedTags(_ base: [String: JSONValue], _ patch: [String: JSONValue]) -> [String: JSONValue] {
        var out = base
        for (key, value) in patch {
            switch value {
            case .null:
                out[key] = nil
            case .object(let inner):
                if case .object(let existing)? = out[key] {
                    out[key] = .object(mergedTags(existing, inner))
                } else {
                    out[key] = .object(mergedTags([:], inner))
                }
            default:
                out[key] = value
            }
        }
        return out
    }
}
