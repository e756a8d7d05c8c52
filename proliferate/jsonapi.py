"""What every JSON route shares (the read API, ingest, uploads): the response helper, the
{"detail": ...} error shape the published API documents, and the bearer-token check."""

import falcon
import orjson

from proliferate import auth


def send(resp, body, status=falcon.HTTP_200, headers=None):
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = orjson.dumps(body)
    if headers:
        resp.set_headers(headers)


def serialize_error(req, resp, exception):
    """Errors as {"detail": ...}."""
    resp.content_type = falcon.MEDIA_JSON
    resp.data = orjson.dumps({'detail': exception.description or exception.title})


def bearer_token(req):
    header = req.get_header('Authorization') or ''
    scheme, _, value = header.partition(' ')
    if scheme.lower() != 'bearer' or not value.strip():
        return None
    return value.strip()


def require_token(req, kind='read'):
    """The ApiToken of this request, or 401; its organization bounds everything it may see."""
    row = auth.find_token(bearer_token(req), kind)
    if row is None:
        raise falcon.HTTPUnauthorized(
            description='a valid token is required: Authorization: Bearer <token>',
            headers={'WWW-Authenticate': 'Bearer'})
    return row
