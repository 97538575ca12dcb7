/// The one switch between Azure's two uses of the IoT Hub query language: a registry query's
/// WHERE clause (over a twin document) and a route condition (over a message).
///
/// Azure documents one language for both (D-QL: "the route condition uses the same IoT Hub query
/// language as conditions in twin and job queries"), so everything else is shared and has no
/// switch: tokens, string escapes (`\'`, `\"`, `\\`, `\uXXXX`, and a doubled quote), numbers,
/// keywords (case-insensitive), operators and their precedence, three-valued logic, comparison
/// rules (ordinal strings, no conversion between types, primitives only), IN/NIN, the
/// function library (`QueryFunction`), and property names matched exactly first, then ignoring
/// case. What really differs is what a name refers to, and that is all this switch decides:
///
/// | Text | `.registryQuery` | `.routing` |
/// |---|---|---|
/// | `a.b` | the twin member `b` of `a` | the application property named `a.b` |
/// | `$name` | a twin member named `$name` (`$metadata`) | the system property `name`, else the application property `$name` |
/// | `$body.a[0].b` | a syntax error (no array indexes in twin paths) | a path into the JSON body |
///
/// Azure's function library is larger for routes than for twin queries (which document only
/// IS_DEFINED); registryd offers the same library to both, so that is not a dialect difference.
public enum QueryDialect: Sendable, Hashable {
    /// A registry query (`SELECT … FROM devices WHERE …`): names are member paths of the twin.
    case registryQuery
    /// A route condition: names are message properties and `$body` paths.
    case routing
}
