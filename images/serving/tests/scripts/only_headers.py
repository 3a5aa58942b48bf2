"""run(request_headers) alone: no parameter left for the input."""


def init():
    pass


def run(request_headers):
    return request_headers
