import Testing
@Test func apiPlaceholder() {}
