"""Plain run() with a request_headers parameter: echoes what it received."""


def init():
    pass


def run(data, request_headers):
    return {"data": data, "headers": request_headers}
