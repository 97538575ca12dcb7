/// The canonical bytes of a JSON value: compact UTF-8, object keys sorted by their UTF-8 bytes,
/// only `"`, `\` and control characters escaped.
///
/// This is exactly Python's `json.dumps(v, sort_keys=True, separators=(",", ":"),
/// ensure_ascii=False)` for the values the log holds, so a third party can re-verify the hash
/// chain with the standard library of most languages.
public enum CanonicalJSON {
    public static func encode(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        write(value, into: &out)
        return out
    }

    public static func write(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: [110, 117, 108, 108])
        case .bool(true): out.append(contentsOf: [116, 114, 117, 101])
        case .bool(false): out.append(contentsOf: [102, 97, 108, 115, 101])
        case .int(let i): out.append(contentsOf: String(i).utf8)
        case .number(let text): out.append(contentsOf: text.utf8)
        case .string(let s): writeString(s, into: &out)
        case .array(let items):
            out.append(91)
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(44) }
                write(item, into: &out)
            }
            out.append(93)
        case .object(let members):
            out.append(123)
            let keys = members.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            for (i, key) in keys.enumerated() {
                if i > 0 { out.append(44) }
                writeString(key, into: &out)
                out.append(58)
                write(members[key]!, into: &out)
            }
            out.append(125)
        }
    }

    static let hexDigits = Array("0123456789abcdef".utf8)

    static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(34)
        // Fast path: most strings need no escaping. Copy in one go, then check the copied bytes
        // (a plain array loop; scanning the String's UTF-8 view was 5% of an import).
        let start = out.count
        out.append(contentsOf: s.utf8)
        var clean = true
        for i in start..<out.count where out[i] < 32 || out[i] == 34 || out[i] == 92 {
            clean = false
            break
        }
        if clean {
            out.append(34)
            return
        }
        out.removeSubrange(start...)
        for b in s.utf8 {
            switch b {
            case 34: out.append(contentsOf: [92, 34])
            case 92: out.append(contentsOf: [92, 92])
            case 8: out.append(contentsOf: [92, 98])
            case 12: out.append(contentsOf: [92, 102])
            case 10: out.append(contentsOf: [92, 110])
            case 13: out.append(contentsOf: [92, 114])
            case 9: out.append(contentsOf: [92, 116])
            case 0..<32: out.append(contentsOf: [92, 117, 48, 48, hexDigits[Int(b >> 4)], hexDigits[Int(b & 15)]])
            default: out.append(b)
            }
        }
        out.append(34)
    }
}
