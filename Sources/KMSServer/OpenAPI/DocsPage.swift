import Crypto
import Foundation
import KMSProtocol

/// The `/docs` page, rendered once from the same route table and schemas as
/// the OpenAPI document. No scripts, no fonts, no external requests: its one
/// inline stylesheet is allowed by hash, so the CSP stays `default-src 'none'`.
struct DocsPage {
    let html: String
    let contentSecurityPolicy: String

    init(routes: RouteTable) {
        let style = Self.style
        let hash = Data(SHA256.hash(data: Data(style.utf8))).base64EncodedString()
        contentSecurityPolicy =
            "default-src 'none'; style-src 'sha256-\(hash)'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        var body = """
            <header><h1>Personal KMS — API</h1>
            <p>Every route answers only clients on the allowlist. Routes marked <span class="badge sealed">sealed</span>
            carry an AES-256-GCM envelope under a per-session key; the tables show their <em>inner</em> JSON.
            Machine-readable: <a href="\(WirePath.openAPI)">\(WirePath.openAPI)</a>.</p></header>
            <section id="protocol"><h2>The session protocol in short</h2><ol>
            <li><code>GET \(WirePath.sessionInit)</code> gives a session id and the server's RSA-4096 key. Compare its
            <code>fingerprint</code> with the one <code>kms server-key</code> prints on the server, then pin it.</li>
            <li>Draw 32 random bytes (the session key), wrap them with RSA-OAEP-256 and send them to
            <code>POST \(WirePath.keyExchange)</code> with your token in <code>X-Client-Token</code>. Open the sealed
            answer (seq 0) to confirm.</li>
            <li>For each protected call, seal the inner JSON: AES-256-GCM, random 12-byte IV, AAD
            <code>kms-v1/request\\nMETHOD\\nTARGET\\nsessionId\\nseq</code> with a fresh seq (1, 2, 3…). POST sends the
            envelope as the body; GET and DELETE send its base64 in <code>X-KMS-Envelope</code>.</li>
            <li>Open every answer with AAD <code>kms-v1/response\\nsessionId\\nseq\\nstatus</code>; refuse it if it
            does not open. Plain (unsealed) answers are only ever errors from before authentication.</li>
            </ol><p>The full, normative text with byte layouts and test vectors is <code>docs/protocol.md</code> in the
            source tree; the error codes are listed there too.</p></section>

            """
        // Every route's tag, in the table's order: a fixed list of four left the lifecycle, alias and client
        // routes off the page (a review: 18 of 36).
        var tags: [String] = []
        for route in routes.routes where !tags.contains(route.doc.tag) { tags.append(route.doc.tag) }
        body +=
            "<nav>" + tags.map { "<a href=\"#\(Self.escape($0))\">\(Self.escape($0))</a>" }.joined(separator: " · ")
            + "</nav>\n"
        for tag in tags {
            body += "<section id=\"\(Self.escape(tag))\"><h2>\(Self.escape(tag))</h2>\n"
            for route in routes.routes where route.doc.tag == tag { body += Self.render(route) }
            body += "</section>\n"
        }
        body += "<section id=\"schemas\"><h2>Schemas</h2>\n"
        for type in OpenAPIDocument.types {
            body += "<h3 id=\"schema-\(type.schemaName)\">\(type.schemaName)</h3>\n" + Self.table(type.schema)
        }
        body += "</section>\n"
        html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Personal KMS — API</title><style>\(style)</style></head>
            <body>\(body)</body></html>

            """
    }

    private static func render(_ route: RouteTable.Route) -> String {
        let doc = route.doc
        var out =
            "<article><h3><span class=\"method \(route.method.rawValue.lowercased())\">\(route.method.rawValue)</span> "
        out += "<code>\(escape(route.path))</code>"
        if route.sealed {
            out += " <span class=\"badge sealed\">sealed</span>"
            out += " <span class=\"badge\">\(escape(doc.permission?.rawValue ?? "session"))</span>"
        }
        out += "</h3><p><strong>\(escape(doc.summary)).</strong> \(escape(doc.description))</p>\n"
        if !doc.query.isEmpty {
            out +=
                "<p>Query: " + doc.query.map { "<code>\($0.0)</code> — \(escape($0.1))" }.joined(separator: "; ")
                + "</p>"
        }
        if let request = doc.request {
            out +=
                "<h4>\(route.sealed ? "Inner request" : "Request") — <a href=\"#schema-\(request.schemaName)\">\(request.schemaName)</a></h4>"
            out += table(request.schema) + "<pre>\(escape(request.exampleJSON))</pre>\n"
        } else if route.sealed {
            out += "<h4>Inner request</h4><p>The empty byte string (GET and DELETE).</p>"
        }
        if let response = doc.response {
            out +=
                "<h4>\(route.sealed ? "Inner response" : "Response") — <a href=\"#schema-\(response.schemaName)\">\(response.schemaName)</a></h4>"
            out += table(response.schema) + "<pre>\(escape(response.exampleJSON))</pre>\n"
        }
        out += "<h4>Errors</h4><table><tr><th>status</th><th>code</th><th>answered</th></tr>"
        for error in OpenAPIDocument.errors(of: route) {
            out += "<tr><td>\(error.code.httpStatus.code)</td><td><code>\(error.code.rawValue)</code></td>"
            out += "<td>\(error.sealed ? "sealed" : "plain")</td></tr>"
        }
        return out + "</table></article>\n"
    }

    private static func table(_ schema: Schema) -> String {
        guard case .object(let properties) = schema else { return "" }
        guard !properties.isEmpty else { return "<p><code>{}</code></p>" }
        var out = "<table><tr><th>field</th><th>type</th><th></th><th>meaning</th></tr>"
        for property in properties {
            out += "<tr><td><code>\(property.name)</code></td><td>\(typeName(property.schema))</td>"
            out += "<td>\(property.required ? "required" : "optional")</td><td>\(escape(meaning(property)))</td></tr>"
        }
        return out + "</table>\n"
    }

    private static func meaning(_ property: Schema.Property) -> String {
        if !property.description.isEmpty { return property.description }
        if case .string(let description, _, _, let values) = property.schema.unlimited {
            return values.map { "one of " + $0.joined(separator: ", ") } ?? description
        }
        if case .integer(let minimum, let maximum) = property.schema, let minimum {
            return maximum.map { "\(minimum) to \($0)" } ?? "at least \(minimum)"
        }
        return ""
    }

    private static func typeName(_ schema: Schema) -> String {
        switch schema {
        case .object: return "object"
        case .string(_, _, let format, _):
            return format == "byte" ? "base64" : (format == "date-time" ? "time" : "string")
        case .integer: return "integer"
        case .boolean: return "boolean"
        case .array(let items): return typeName(items) + "[]"
        case .reference(let name): return "<a href=\"#schema-\(name)\">\(name)</a>"
        case .oneOf: return "one of"
        case .map(let values): return "{string: \(typeName(values))}"
        case .nullable(let inner): return typeName(inner) + " or null"
        case .limited(let inner, _): return typeName(inner)
        }
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static let style = """
        body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#1d232a;background:#fbfbfa}\
        h1{font-size:1.7em;margin:0 0 .3em}h2{border-bottom:2px solid #dfe3e8;padding-bottom:.2em;margin-top:2em;text-transform:capitalize}\
        h3{font-size:1.1em;margin:1.6em 0 .4em}h4{font-size:.95em;margin:1em 0 .3em;color:#444}\
        article{background:#fff;border:1px solid #e3e6ea;border-radius:8px;padding:.6em 1.2em 1em;margin:1em 0}\
        code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em}\
        pre{background:#f3f5f7;border-radius:6px;padding:.7em;overflow-x:auto}\
        table{border-collapse:collapse;width:100%;margin:.3em 0}th,td{text-align:left;padding:.25em .6em;border-bottom:1px solid #eceef1;vertical-align:top}\
        th{font-weight:600;color:#555;font-size:.85em}\
        .method{display:inline-block;min-width:4.2em;text-align:center;border-radius:4px;color:#fff;font-size:.8em;padding:.1em .4em}\
        .get{background:#2f7d4f}.post{background:#2457a6}.delete{background:#b3372f}\
        .badge{font-size:.75em;border-radius:10px;padding:.1em .6em;vertical-align:middle}.sealed{background:#efe4ff;color:#5a2ca0}\
        nav{margin:1em 0;font-weight:600;text-transform:capitalize}a{color:#2457a6}
        """
}
