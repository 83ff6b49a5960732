import Foundation

/// Prometheus text exposition read by the Prometheus project's own Python client
/// (`prometheus_client.parser`, Debian's python3-prometheus-client), so a test sees what a
/// real scraper sees rather than what our own reading of the format accepts.
public enum PrometheusTextParser {
    public struct Sample: Equatable {
        public let name: String
        public let labels: [String: String]
        public let value: Double
    }

    public struct Family: Equatable {
        /// As the parser names it: a counter's family drops the `_total` of its samples.
        public let name: String
        public let type: String
        public let help: String
        public let samples: [Sample]
    }

    /// The families in order, or an error carrying the parser's complaint.
    public static func parse(_ text: String) throws -> [Family] {
        let script = """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            text = sys.stdin.buffer.read().decode("utf-8")
            out = []
            for family in text_string_to_metric_families(text):
                out.append({"name": family.name, "type": family.type, "help": family.documentation,
                            "samples": [{"name": s.name, "labels": s.labels, "value": s.value}
                                        for s in family.samples]})
            json.dump(out, sys.stdout)
            """
        // Debian's interpreter, where Debian's package puts the module (a python3 earlier on
        // PATH, pyenv's say, would not see it).
        let output = try Shell.run(["/usr/bin/python3", "-c", script], input: Data(text.utf8)).output
        guard let families = try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]] else {
            throw Shell.Failure(command: ["python3", "prometheus_client.parser"], status: 0, output: output)
        }
        return families.map { family in
            let samples = (family["samples"] as? [[String: Any]] ?? []).map { sample in
                Sample(name: sample["name"] as? String ?? "", labels: sample["labels"] as? [String: String] ?? [:],
                       value: (sample["value"] as? NSNumber)?.doubleValue ?? .nan)
            }
            return Family(name: family["name"] as? String ?? "", type: family["type"] as? String ?? "",
                          help: family["help"] as? String ?? "", samples: samples)
        }
    }
}
