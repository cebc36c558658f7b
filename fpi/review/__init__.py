"""`fpi review`: a local web page to label turns one at a time, in queue order, by keyboard."""

from fpi.review.server import ReviewServer, serve_until_interrupted
from fpi.review.session import ReviewError, ReviewSession, open_session

__all__ = [
    "ReviewError",
    "ReviewServer",
    "ReviewSession",
    "open_session",
    "serve_until_interrupted",
]
