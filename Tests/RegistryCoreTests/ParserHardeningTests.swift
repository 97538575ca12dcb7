import RegistryCore
import RegistryTesting
import Testing

/// Issue 17 item 2: the parsers that take what callers send neither crash nor run away, whatever
/// the input. Deep nesting has exit tests (before the limit, each of these crashed the process
/// with a stack overflow); everything else a seeded fuzz run with a per-input time bound.
struct ParserHardeningTests {
    static let twin = try! JSONParser.parse(
        #"{"deviceId":"d1","status":"enabled","tags":{"site":"x","n":3,"list":[1,2,{"a":null}]},"capabilities":{"iotEdge":false}}"#
    )

    // MARK: deep nesting, in a child process so a crash fails the test instead of the run

    // Queries are at most 8,192 characters (the lexer's bound), so these stay under it: that
    // alone allowed 4,000 levels of recursion, several frames each.
    @Test func deepParenthesesInAQueryAnswerASyntaxErrorNamingTheLimit() async {
        await #expect(processExitsWith: .success) {
            let deep = "SELECT * FROM devices WHERE " + String(repeating: "(", count: 4000) + "a = 1" + String(repeating: ")", count: 4000)
            do {
                _ = try QueryParser.parse(deep)
            } catch let error as QuerySyntaxError {
                precondition(error.message.contains("deeper than \(QueryParser.maximumDepth)"), error.description)
                return
            } catch {
                preconditionFailure("\(error)")
            }
            preconditionFailure("parsed")
        }
    }

    @Test func longOperatorChainsAndPrefixRunsInAQueryAreRefused() async {
        await #expect(processExitsWith: .success) {
            let chains = [
                "SELECT * FROM devices WHERE " + Array(repeating: "a = 1", count: 800).joined(separator: " AND "),
                "SELECT * FROM devices WHERE " + Array(repeating: "a = 1", count: 800).joined(separator: " OR "),
                "SELECT * FROM devices WHERE " + String(repeating: "NOT ", count: 2000) + "a = 1",
                "SELECT * FROM devices WHERE a = " + String(repeating: "-", count: 8000) + "1",
                "SELECT * FROM devices WHERE a = " + Array(repeating: "1", count: 2000).joined(separator: "+"),
                "SELECT * FROM devices WHERE " + String(repeating: "STARTS_WITH(", count: 400) + "a" + String(repeating: ", 'x')", count: 400),
            ]
            for text in chains {
                do {
                    _ = try QueryParser.parse(text)
                    preconditionFailure("parsed")
                } catch let error as QuerySyntaxError {
                    precondition(error.message.contains("deeper than"), error.description)
                } catch {
                    preconditionFailure("\(error)")
                }
            }
        }
    }

    @Test func deepJSONIsRefused() async {
        await #expect(processExitsWith: .success) {
            for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
                let deep = String(repeating: open, count: 200_000) + "1" + String(repeating: close, count: 200_000)
                do {
                    _ = try JSONParser.parse(deep)
                    preconditionFailure("parsed")
                } catch let error as JSONParser.Error {
                    precondition(error.reason.contains("deeper"), error.description)
                } catch {
                    preconditionFailure("\(error)")
                }
            }
        }
    }

    @Test func theDepthLimitStillAcceptsWhatUsersWrite() throws {
        // 100 chained conditions and 60 levels of parentheses are fine.
        let chain = "SELECT * FROM devices WHERE " + Array(repeating: "status = 'enabled'", count: 100).joined(separator: " AND ")
        #expect(QueryEvaluator.matches(try QueryParser.parse(chain).filter, Self.twin))
        let nested = "SELECT * FROM devices WHERE " + String(repeating: "(", count: 60) + "status = 'enabled'" + String(repeating: ")", count: 60)
        #expect(QueryEvaluator.matches(try QueryParser.parse(nested).filter, Self.twin))
        // Exactly at the limit parses; one more level does not.
        let atLimit = "SELECT * FROM devices WHERE " + String(repeating: "NOT ", count: QueryParser.maximumDepth - 2) + "status = 'enabled'"
        _ = try QueryParser.parse(atLimit)
        let over = "SELECT * FROM devices WHERE " + String(repeating: "NOT ", count: QueryParser.maximumDepth + 1) + "status = 'enabled'"
        #expect(throws: QuerySyntaxError.self) { try QueryParser.parse(over) }
    }

    // MARK: fuzzing

    @Test func fuzzTheJSONParser() {
        let fuzzer = Fuzzer(
            corpus: [
                #"{"deviceId":"d1","status":"enabled","authentication":{"type":"sas","symmetricKey":{"primaryKey":"a2V5","secondaryKey":null}}}"#,
                #"[1,-2.5e10,true,false,null,"\u00e9\ud83d\udca9",{"":[]}]"#, #""\\\"\/\b\f\n\r\t""#, "0", "{}",
            ],
            dictionary: ["{", "}", "[", "]", ",", ":", "\"", "\\u", "\\", "1e999", "-0", "null", "true", "\"a\":"],
            nestings: [("[", "]"), ("{\"k\":", "}")]
        )
        var roundTrips = 0
        let slow = fuzzer.run(seed: 1) { input in
            guard let value = try? JSONParser.parse(input) else { return }
            // What parses re-encodes canonically and parses back to the same value.
            let again = try? JSONParser.parse(CanonicalJSON.encode(value))
            #expect(again == value, "round trip of \(String(decoding: input.prefix(200), as: UTF8.self))")
            roundTrips += 1
        }
        #expect(slow.isEmpty, "inputs over the time bound: \(slow)")
        #expect(roundTrips > 0, "the corpus mutations must reach the parser's success path too")
    }

    @Test func fuzzTheQueryParserAndEvaluator() {
        let fuzzer = Fuzzer(
            corpus: [
                "SELECT * FROM devices WHERE status = 'disabled' AND tags.site = 'x'",
                "SELECT TOP 5 deviceId, status AS s FROM devices.modules WHERE NOT (a.b >= 3 OR c IN ['x', 1])",
                "SELECT status, COUNT() AS n FROM devices GROUP BY status",
                "SELECT * FROM devices WHERE STARTS_WITH(deviceId, 'a') AND IS_DEFINED(tags.x) AND -n * 2 % 3 < 1",
            ],
            dictionary: [" AND ", " OR ", "NOT ", "(", ")", "[", "]", "'", "\"", ".", ",", "-", "*", " IN ", "COUNT()", "SELECT", " = ", "''"],
            nestings: [("(", ")"), ("NOT ", ""), ("-", ""), ("LOWER(", ")")]
        )
        var parsed = 0
        let slow = fuzzer.run(seed: 2) { input in
            guard let query = try? QueryParser.parse(String(decoding: input, as: UTF8.self)) else { return }
            parsed += 1
            _ = QueryEvaluator.matches(query.filter, Self.twin)
        }
        #expect(slow.isEmpty, "inputs over the time bound: \(slow)")
        #expect(parsed > 0)
    }

    @Test func fuzzTheSASParser() {
        let fuzzer = Fuzzer(
            corpus: [
                "SharedAccessSignature sr=hub.example%2Fdevices%2Fd1&sig=abc%2Bdef%3D&se=1767225600&skn=iothubowner",
                "sharedaccesssignature SE=1&SR=x&SIG=y", "sr=a&sig=b&se=c",
            ],
            dictionary: ["&", "=", "%", "%2", "%zz", "sig=", "se=", "sr=", "skn=", " ", "SharedAccessSignature "],
            nestings: [("%25", ""), ("&", "")]
        )
        var accepted = 0
        let slow = fuzzer.run(seed: 3) { input in
            let text = String(decoding: input, as: UTF8.self)
            if SharedAccessSignature(header: text) != nil { accepted += 1 }
            _ = SharedAccessSignature(credential: text)
        }
        #expect(slow.isEmpty, "inputs over the time bound: \(slow)")
        #expect(accepted > 0)
    }
}
