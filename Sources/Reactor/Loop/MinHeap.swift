/// A binary min-heap: the loop's timers and the daemon's refresh times. Ties keep whatever
/// order `<` gives (both users break them by a sequence number, first in first out).
public struct MinHeap<Element: Comparable> {
    public private(set) var elements: [Element] = []

    public init() {}

    public var first: Element? { elements.first }
    public var count: Int { elements.count }
    public var isEmpty: Bool { elements.isEmpty }

    public mutating func push(_ element: Element) {
        elements.append(element)
        var child = elements.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard elements[child] < elements[parent] else { break }
            elements.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes the smallest element.
    @discardableResult
    public mutating func popFirst() -> Element? {
        guard let top = elements.first else { return nil }
        let last = elements.removeLast()
        if !elements.isEmpty {
            elements[0] = last
            siftDown(from: 0)
        }
        return top
    }

    /// Keeps the elements `isIncluded` accepts, rebuilt in O(n) (Floyd's construction).
    public mutating func retain(where isIncluded: (Element) -> Bool) {
        elements = elements.filter(isIncluded)
        heapify()
    }

    /// Replaces the contents, rebuilt in O(n).
    public mutating func replace(with newElements: [Element]) {
        elements = newElements
        heapify()
    }

    public mutating func removeAll() { elements = [] }

    private mutating func heapify() {
        var index = elements.count / 2
        while index > 0 {
            index -= 1
            siftDown(from: index)
        }
    }

    private mutating func siftDown(from start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            guard left < elements.count else { return }
            let right = left + 1
            var smallest = left
            if right < elements.count && elements[right] < elements[left] { smallest = right }
            guard elements[smallest] < elements[parent] else { return }
            elements.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
