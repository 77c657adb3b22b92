"""Kubernetes' rules for names, as the API server applies them. Pure.

A ``scaleTargetRef`` becomes a request path (``/apis/{apiVersion}/namespaces/{namespace}/
{plural}/{name}/scale``), so a name that is not a valid Kubernetes name must never get
that far: ``demo/../../secrets/x`` would address another object. Each check returns None
for a valid value, or the rule it breaks in words (for a policy error).

The rules are apimachinery's (``k8s.io/apimachinery/pkg/util/validation``): object names of
workloads are DNS-1123 subdomains, namespaces DNS-1123 labels, an API group a DNS-1123
subdomain, a version a DNS-1035 label, a kind (lower-cased) a DNS-1035 label as
apiextensions requires of a CRD's kind.
"""

from __future__ import annotations

import re

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(rf"^{_LABEL}$")
_DNS1123_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_KIND = re.compile(r"^[A-Za-z]([-A-Za-z0-9]*[A-Za-z0-9])?$")

LABEL_MAX = 63
SUBDOMAIN_MAX = 253


def dns1123_label(value: str) -> str | None:
    """A namespace: lowercase letters, digits and '-', alphanumeric at both ends, <= 63."""
    if len(value) > LABEL_MAX or not _DNS1123_LABEL.match(value):
        return ("is not a valid Kubernetes namespace (DNS-1123 label: lowercase letters, "
                "digits and '-', starting and ending with a letter or digit, at most 63 "
                "characters)")
    return None


def dns1123_subdomain(value: str) -> str | None:
    """An object name: DNS-1123 labels joined by '.', at most 253 characters."""
    if len(value) > SUBDOMAIN_MAX or not _DNS1123_SUBDOMAIN.match(value):
        return ("is not a valid Kubernetes object name (DNS-1123 subdomain: lowercase "
                "letters, digits, '-' and '.', starting and ending with a letter or digit, "
                "at most 253 characters)")
    return None


def kind(value: str) -> str | None:
    """A kind: letters, digits and '-', starting with a letter (``Deployment``)."""
    if len(value) > LABEL_MAX or not _KIND.match(value):
        return ("is not a valid kind (letters and digits, starting with a letter, at most "
                "63 characters, e.g. Deployment)")
    return None


def api_version(value: str) -> str | None:
    """``v1`` or ``group/version`` (``apps/v1``, ``argoproj.io/v1alpha1``)."""
    group, slash, version = value.rpartition("/")
    good_group = not slash or (len(group) <= SUBDOMAIN_MAX
                               and bool(_DNS1123_SUBDOMAIN.match(group)))
    if not (good_group and len(version) <= LABEL_MAX and _DNS1035_LABEL.match(version)):
        return ("is not a valid apiVersion (GROUP/VERSION such as apps/v1, or v1 for the "
                "core group)")
    return None
