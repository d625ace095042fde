"""OAuth 1.0a signing against published vectors, with fixed nonce and timestamp.

Vectors: RFC 5849 §1.2 (the photos example: temporary credentials, token
credentials and a resource request), RFC 5849 §3.4.1.1 (the base string of a
request with query, header and form-body parameters), and Twitter's widely
published "Creating a signature" example.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import unquote

import pytest
from authlib.oauth1.rfc5849.signature import normalize_parameters
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.oauth1 import (
    OAuth1Credentials,
    UnsignableRequest,
    authorization_header,
    base_string_uri,
    normalized_parameters,
    request_parameters,
    sign,
    signature_base_string,
)

FORM = "application/x-www-form-urlencoded"
PHOTOS_CONSUMER = ("dpf43f3p2l4k3l03", "kd94hf93k423kf44")


def header_params(header: str) -> dict[str, str]:
    assert header.startswith("OAuth ")
    out = {}
    for part in header[6:].split(", "):
        name, _, value = part.partition("=")
        out[name] = unquote(value.strip('"'))
    return out


def test_rfc5849_temporary_credentials_request() -> None:
    signed = sign(
        "POST", "https://photos.example.net/initiate", "", "", b"",
        OAuth1Credentials(*PHOTOS_CONSUMER),
        nonce="wIjqoS", timestamp=137131200,
        callback="http://printer.example.com/ready", version=False,
    )  # fmt: skip
    assert signed.signature == "74KNZJeDHnMBp0EMJ9ZHt/XKycU="
    params = header_params(signed.header)
    assert params["oauth_callback"] == "http://printer.example.com/ready"
    assert params["oauth_signature"] == "74KNZJeDHnMBp0EMJ9ZHt/XKycU="
    assert 'oauth_callback="http%3A%2F%2Fprinter.example.com%2Fready"' in signed.header


def test_rfc5849_token_credentials_request() -> None:
    creds = OAuth1Credentials(*PHOTOS_CONSUMER, "hh5s93j4hdidpola", "hdhd0244k9j7ao03")
    signed = sign(
        "POST", "https://photos.example.net/token", "", "", b"", creds,
        nonce="walatlh", timestamp=137131201, verifier="hfdp7dh39dks9884", version=False,
    )  # fmt: skip
    assert signed.signature == "gKgrFCywp7rO0OXSjdot/IHF7IU="


def test_rfc5849_resource_request_with_query() -> None:
    creds = OAuth1Credentials(*PHOTOS_CONSUMER, "nnch734d00sl2jdk", "pfkkdhi9sl3r4s00")
    signed = sign(
        "GET", "http://photos.example.net/photos", "file=vacation.jpg&size=original", "", b"",
        creds, nonce="chapoH", timestamp=137131202, version=False,
    )  # fmt: skip
    assert signed.signature == "MdpQcU8iPSUjWoN/UDMsK2sui9I="


def test_rfc5849_base_string_with_query_header_and_form_body() -> None:
    oauth = [
        ("oauth_consumer_key", "9djdj82h48djs9d2"),
        ("oauth_token", "kkk9d7dh3k39sjv7"),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", "137131201"),
        ("oauth_nonce", "7d8f3e4a"),
        ("oauth_signature", "ignored"),
        ("realm", "Example"),
    ]
    params = request_parameters("b5=%3D%253D&a3=a&c%40=&a2=r%20b", oauth, FORM, b"c2&a3=2+q")
    base = signature_base_string("POST", base_string_uri("http://example.com/request"), params)
    assert base == (
        "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q"
        "%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_"
        "key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m"
        "ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk"
        "9d7dh3k39sjv7"
    )


def test_twitter_example_signs_query_and_form_body() -> None:
    creds = OAuth1Credentials(
        "xvz1evFS4wEEPTGEFPHBog",
        "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
        "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
        "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
    )
    signed = sign(
        "POST", "https://api.twitter.com/1.1/statuses/update.json", "include_entities=true",
        FORM, b"status=Hello%20Ladies%20%2b%20Gentlemen%2c%20a%20signed%20OAuth%20request%21",
        creds, nonce="kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg", timestamp=1318622958,
    )  # fmt: skip
    assert signed.signature == "hCtSmYh+iHYCEqBWrE7C7hYmtUk="
    assert signed.base_string.startswith(
        "POST&https%3A%2F%2Fapi.twitter.com%2F1.1%2Fstatuses%2Fupdate.json&include_entities"
    )


def test_a_json_body_is_not_signed() -> None:
    creds = OAuth1Credentials("ck", "cs")
    args = dict(nonce="n", timestamp=1)
    with_json = sign("POST", "http://h/x", "", "application/json", b'{"a":1}', creds, **args)
    empty = sign("POST", "http://h/x", "", "application/json", b"", creds, **args)
    form = sign("POST", "http://h/x", "", FORM, b"a=1", creds, **args)
    assert with_json.signature == empty.signature
    assert form.signature != empty.signature


def test_base_string_uri_normalises_scheme_host_and_default_port() -> None:
    assert base_string_uri("HTTP://EXAMPLE.COM:80/r%20v/X") == "http://example.com/r%20v/X"
    assert base_string_uri("https://www.example.net:8080/") == "https://www.example.net:8080/"
    assert base_string_uri("https://h:443/a") == "https://h/a"


def test_nonce_and_timestamp_change_the_signature() -> None:
    creds = OAuth1Credentials("ck", "cs")
    one = sign("GET", "http://h/x", "", "", b"", creds, nonce="a", timestamp=1)
    assert one.signature != sign("GET", "http://h/x", "", "", b"", creds, nonce="b", timestamp=1)
    assert one.signature != sign("GET", "http://h/x", "", "", b"", creds, nonce="a", timestamp=2)


def test_two_legged_key_has_an_empty_token_secret() -> None:
    signed = sign("GET", "http://h/x", "", "", b"", OAuth1Credentials("ck", "cs"),
                  nonce="n", timestamp=1)  # fmt: skip
    assert "oauth_token" not in header_params(signed.header)
    import base64
    import hashlib
    import hmac

    expected = hmac.new(b"cs&", signed.base_string.encode(), hashlib.sha1).digest()
    assert signed.signature == base64.b64encode(expected).decode()


def test_a_form_body_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(UnsignableRequest):
        request_parameters("", [], FORM, b"a=\xff")


def test_authorization_header_encodes_values() -> None:
    assert authorization_header([("oauth_x", "a b/c")]) == 'OAuth oauth_x="a%20b%2Fc"'


def test_credentials_repr_hides_secrets() -> None:
    text = repr(OAuth1Credentials("ck", "consumer-secret", "tok", "token-secret"))
    assert "secret" not in text.replace("consumer_key", "")


@pytest.mark.parametrize(
    ("url", "uri"),
    [
        ("https://api.buzzstream.com/v1/websites;", "https://api.buzzstream.com/v1/websites;"),
        ("https://API.buzzstream.com:443/v1/websites/1;", "https://api.buzzstream.com/v1/websites/1;"),
        ("http://h:8080/v1/a;b;", "http://h:8080/v1/a;b;"),
        ("http://h", "http://h/"),
    ],
)  # fmt: skip
def test_base_string_uri_keeps_the_path_as_sent(url: str, uri: str) -> None:
    """An empty ``;params`` is part of the path sent (RFC 3986 §3.3): it is signed."""
    assert base_string_uri(url) == uri


def test_a_path_ending_in_a_semicolon_is_signed_over_that_path() -> None:
    """RFC 5849 §1.2's resource request, with ``;`` after the path; the expected
    signature is computed here from the base string the RFC's steps give."""
    creds = OAuth1Credentials(*PHOTOS_CONSUMER, "nnch734d00sl2jdk", "pfkkdhi9sl3r4s00")
    signed = sign(
        "GET", "http://photos.example.net/photos;", "file=vacation.jpg&size=original", "", b"",
        creds, nonce="chapoH", timestamp=137131202, version=False,
    )  # fmt: skip
    base = (
        "GET&http%3A%2F%2Fphotos.example.net%2Fphotos%3B&file%3Dvacation.jpg%26"
        "oauth_consumer_key%3Ddpf43f3p2l4k3l03%26oauth_nonce%3DchapoH%26"
        "oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131202%26"
        "oauth_token%3Dnnch734d00sl2jdk%26size%3Doriginal"
    )
    assert signed.base_string == base
    key = b"kd94hf93k423kf44&pfkkdhi9sl3r4s00"
    expected = base64.b64encode(hmac.new(key, base.encode(), hashlib.sha1).digest()).decode()
    assert signed.signature == expected != "MdpQcU8iPSUjWoN/UDMsK2sui9I="


@given(
    st.lists(
        st.tuples(st.text(max_size=12), st.text(max_size=12)),
        max_size=8,
    )
)
def test_normalized_parameters_agree_with_authlib(params: list[tuple[str, str]]) -> None:
    # The gateway encodes each pair once (memoized) instead of calling authlib's
    # normalize_parameters, which would encode them again: the result must not change.
    assert normalized_parameters(params) == normalize_parameters(params)
    assert normalized_parameters(params) == normalized_parameters(params)  # cached: same again
