extension Result {
    /// The error of a failed result, nil for a success: for assertions on why it failed.
    public var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
