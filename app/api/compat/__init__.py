"""Other Whisper services' APIs, one module per service, named by its public name: each only translates its
requests and responses onto this service's own (the same admission, queue, tasks and limits)."""
