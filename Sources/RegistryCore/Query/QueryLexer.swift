/// Tokens of the query language. Keywords are case-insensitive; identifiers keep their case.
struct QueryToken: Hashable {
    enum Kind: Hashable {
        case identifier(String)
        case keyword(String)  // upper-cased
        case string(String)
        case number(String)
        case symbol(String)
        case end
    }
    var kind: Kind
    /// 1-based character position in the query text.
    var position: Int
}

enum QueryLexer {
    static let keywords: Set<String> = [
        "SELECT", "TOP", "FROM", "WHERE", "GROUP", "BY", "AS", "AND", "OR", "NOT", "IN", "NIN", "TRUE", "FALSE", "NULL",
    ]
    static let maximumLength = 8192

    static func tokens(_ text: String) throws(QuerySyntaxError) -> [QueryToken] {
        let chars = Array(text.unicodeScalars)
        guard chars.count <= maximumLength else { throw QuerySyntaxError(position: maximumLength + 1, message: "the query is longer than \(maximumLength) characters") }
        var tokens: [QueryToken] = []
        var i = 0
        func isIdentifierStart(_ c: Unicode.Scalar) -> Bool { c.properties.isAlphabetic || c == "_" || c == "$" }
        func isIdentifierPart(_ c: Unicode.Scalar) -> Bool { isIdentifierStart(c) || ("0"..."9").contains(c) || c == "-" }
        while i < chars.count {
            let c = chars[i]
            let start = i + 1
            if c == " " || c == "\t" || c == "\n" || c == "\r" {
                i += 1
            } else if c == "'" || c == "\"" {
                var value = ""
                i += 1
                var closed = false
                while i < chars.count {
                    if chars[i] == "\\", i + 1 < chars.count {
                        value.unicodeScalars.append(chars[i + 1])
                        i += 2
                    } else if chars[i] == c {
                        closed = true
                        i += 1
                        break
                    } else {
                        value.unicodeScalars.append(chars[i])
                        i += 1
                    }
                }
                guard closed else { throw QuerySyntaxError(position: start, message: "unterminated string") }
                tokens.append(QueryToken(kind: .string(value), position: start))
            } else if ("0"..."9").contains(c) {
                var text = ""
                while i < chars.count, ("0"..."9").contains(chars[i]) || chars[i] == "." || chars[i] == "e" || chars[i] == "E" {
                    text.unicodeScalars.append(chars[i])
                    i += 1
                }
                guard Double(text) != nil else { throw QuerySyntaxError(position: start, message: "bad number '\(text)'") }
                tokens.append(QueryToken(kind: .number(text), position: start))
            } else if isIdentifierStart(c) {
                var text = ""
                while i < chars.count, isIdentifierPart(chars[i]) {
                    text.unicodeScalars.append(chars[i])
                    i += 1
                }
                let upper = text.uppercased()
                tokens.append(QueryToken(kind: keywords.contains(upper) ? .keyword(upper) : .identifier(text), position: start))
            } else {
                let two = i + 1 < chars.count ? String(chars[i]) + String(chars[i + 1]) : ""
                if ["<=", ">=", "!=", "<>"].contains(two) {
                    tokens.append(QueryToken(kind: .symbol(two == "<>" ? "!=" : two), position: start))
                    i += 2
                } else if "=<>(),.[]*+-/%".unicodeScalars.contains(c) {
                    tokens.append(QueryToken(kind: .symbol(String(c)), position: start))
                    i += 1
                } else {
                    throw QuerySyntaxError(position: start, message: "unexpected character '\(c)'")
                }
            }
        }
        tokens.append(QueryToken(kind: .end, position: chars.count + 1))
        return tokens
    }
}
