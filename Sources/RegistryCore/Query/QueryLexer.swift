/// Tokens of the IoT Hub query language, for registry queries and route conditions alike.
/// Keywords are case-insensitive; identifiers keep their case.
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
    /// 1-based character position in the text.
    var position: Int
    /// A word as written (identifiers and keywords), so that a keyword can still name a member
    /// after '.' (`$body.in`, `tags.from`).
    var spelling = ""
}

/// The one lexer of the query language. Literal rules, shared by every front:
///
/// - Strings in single or double quotes. Escapes are Azure's (`\'`, `\"`, `\\`, `\uXXXX` with
///   surrogate pairs); another escaped character stands for itself. A doubled quote also stands
///   for one quote (`'it''s'`), the SQL convention route conditions accepted before they shared
///   this lexer; the two never conflict, since adjacent string literals are not valid syntax.
/// - Numbers: decimal digits with an optional fraction and exponent (`3.5e-2`); a sign is the
///   unary minus operator, not part of the literal.
/// - Names start with a letter, `_` or `$` and go on with those, digits and `-`.
enum QueryLexer {
    /// The expression grammar's words, reserved wherever an expression is parsed.
    static let expressionKeywords: Set<String> = ["AND", "OR", "NOT", "IN", "NIN", "TRUE", "FALSE", "NULL"]
    /// The SELECT statement's words, reserved only in a whole query: a route condition may name
    /// an application property `from` or `top`.
    static let statementKeywords: Set<String> = ["SELECT", "TOP", "FROM", "WHERE", "GROUP", "BY", "AS"]

    static func tokens(_ text: String, keywords: Set<String>, maximumLength: Int? = nil) throws(QuerySyntaxError) -> [QueryToken] {
        let chars = Array(text.unicodeScalars)
        if let maximumLength, chars.count > maximumLength {
            throw QuerySyntaxError(position: maximumLength + 1, message: "the query is longer than \(maximumLength) characters")
        }
        var tokens: [QueryToken] = []
        var i = 0
        func isDigit(_ c: Unicode.Scalar) -> Bool { ("0"..."9").contains(c) }
        func isIdentifierStart(_ c: Unicode.Scalar) -> Bool { c.properties.isAlphabetic || c == "_" || c == "$" }
        func isIdentifierPart(_ c: Unicode.Scalar) -> Bool { isIdentifierStart(c) || isDigit(c) || c == "-" }
        /// The code unit of the four hex digits at `at`, or nil.
        func hex4(at start: Int) -> UInt32? {
            guard start + 4 <= chars.count else { return nil }
            var value: UInt32 = 0
            for c in chars[start..<start + 4] {
                guard let digit = Character(c).hexDigitValue else { return nil }
                value = value * 16 + UInt32(digit)
            }
            return value
        }
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
                        guard chars[i + 1] == "u" else {
                            value.unicodeScalars.append(chars[i + 1])
                            i += 2
                            continue
                        }
                        let bad = QuerySyntaxError(position: i + 1, message: "a \\u escape takes four hex digits naming a character")
                        guard let unit = hex4(at: i + 2) else { throw bad }
                        i += 6
                        var code = unit
                        if (0xD800...0xDBFF).contains(unit) {
                            // A character beyond the BMP is written as its UTF-16 surrogate pair.
                            guard i + 1 < chars.count, chars[i] == "\\", chars[i + 1] == "u", let low = hex4(at: i + 2),
                                (0xDC00...0xDFFF).contains(low)
                            else { throw bad }
                            code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                            i += 6
                        }
                        guard let scalar = Unicode.Scalar(code) else { throw bad }
                        value.unicodeScalars.append(scalar)
                    } else if chars[i] == c {
                        if i + 1 < chars.count, chars[i + 1] == c {
                            value.unicodeScalars.append(c)
                            i += 2
                            continue
                        }
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
            } else if isDigit(c) {
                var text = ""
                while i < chars.count {
                    let d = chars[i]
                    let exponentSign = (d == "+" || d == "-") && (text.unicodeScalars.last == "e" || text.unicodeScalars.last == "E")
                    guard isDigit(d) || d == "." || d == "e" || d == "E" || exponentSign else { break }
                    text.unicodeScalars.append(d)
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
                tokens.append(QueryToken(kind: keywords.contains(upper) ? .keyword(upper) : .identifier(text), position: start, spelling: text))
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
