//! What a proposed roster version changes, in words an administrator
//! reviews before approving it. (Being written.)
