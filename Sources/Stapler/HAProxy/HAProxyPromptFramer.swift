/// Cuts the byte stream of a runtime API connection in prompt mode into answers.
///
/// In prompt mode every answer ends with an empty line followed by `> ` (an empty answer is
/// just `\n> `), and a command with a payload (`<<`) first gets one `+ ` per payload line.
/// Chunks may be cut anywhere, even inside the prompt. One command is outstanding at a time,
/// so bytes after an answer's prompt are a protocol error.
struct HAProxyPromptFramer {
    enum Output: Equatable {
        case incomplete
        /// The answer's text without payload prompts, the final newline, or the prompt.
        case answer([UInt8])
        /// More than the limit arrived without a prompt.
        case tooLarge(limit: Int)
        /// Bytes followed the prompt although no other command was sent.
        case trailingBytes
    }

    let limit: Int
    private var buffer: [UInt8] = []
    /// Where the search for the prompt resumes: earlier bytes held no prompt.
    private var searchFrom = 0

    init(limit: Int) { self.limit = limit }

    var bufferedBytes: Int { buffer.count }

    mutating func append<C: Collection>(_ chunk: C) -> Output where C.Element == UInt8 {
        buffer.append(contentsOf: chunk)
        let start = payloadPromptsEnd()
        // Look for "\n> " at `start` or right after a "\n": the prompt after an empty line.
        var index = max(start, searchFrom)
        while index + 3 <= buffer.count {
            if buffer[index] == 0x0A && buffer[index + 1] == UInt8(ascii: ">") && buffer[index + 2] == 0x20
                && (index == start || buffer[index - 1] == 0x0A) {
                let answerEnd = index == start ? start : index - 1
                let answer = Array(buffer[start..<answerEnd])
                let trailing = buffer.count > index + 3
                reset()
                return trailing ? .trailingBytes : .answer(answer)
            }
            index += 1
        }
        // The last two bytes may be the start of a prompt still on its way.
        searchFrom = max(start, buffer.count - 2)
        if buffer.count > limit {
            reset()
            return .tooLarge(limit: limit)
        }
        return .incomplete
    }

    mutating func reset() {
        buffer = []
        searchFrom = 0
    }

    /// The index after the leading `+ ` payload prompts (a lone trailing `+` waits for its
    /// space, so it is not counted yet).
    private func payloadPromptsEnd() -> Int {
        var index = 0
        while index + 2 <= buffer.count && buffer[index] == UInt8(ascii: "+") && buffer[index + 1] == 0x20 {
            index += 2
        }
        return index
    }
}
