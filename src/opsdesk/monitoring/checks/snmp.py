"""SNMP check (v2c and v3): read values, or interface status and traffic from IF-MIB.

Target: ``host`` or ``host:port`` (default port 161); an IPv6 address in brackets, ``[2001:db8::1]:161``.

Credentials
    ``version`` "2c" (default) or "3". v2c sends ``community`` (default "public"). v3 sends
    ``username`` with ``auth_protocol`` none/MD5/SHA/SHA-224/SHA-256/SHA-384/SHA-512 plus
    ``auth_password``, and ``priv_protocol`` none/DES/AES-128 (alias AES)/AES-192/AES-256/
    AES-192-C/AES-256-C plus ``priv_password``. The AES-192/256 names follow Net-SNMP: plain
    names are the Blumenthal key extension, ``-C`` the Reeder ("Cisco") one. The security level
    follows from the protocols; ``security_level`` may be given too, and must then agree. A password
    for a protocol set to "none" is ignored. ``context`` is the v3 context name. ``community``,
    ``auth_password`` and ``priv_password`` are secret fields (encrypted at rest).

``mode: get`` (default)
    ``oids``: a list of OIDs, each a string or ``{oid, label, warn, critical, compare, walk}``. An
    OID is numeric (``1.3.6.1.2.1.1.3.0``) or a name this module carries (:data:`OIDS`), with an
    optional instance suffix (``ifInOctets.2``) and an optional ``MODULE::`` prefix. A scalar named
    without suffix gets ``.0``; a table column named without suffix (``hrProcessorLoad``) is walked
    and every instance is evaluated; a numeric OID is fetched with GET unless ``walk: true``.
    ``warn``/``critical`` are numbers compared with ``compare`` (">" default, ">=", "<", "<=", "==",
    "!="; the condition describes the bad case): past ``critical`` is down, past ``warn`` is
    degraded. A value with thresholds that is not a number is down; so is a missing object
    (noSuchObject / noSuchInstance) or a walk that finds nothing.

``mode: interfaces``
    Walks IF-MIB ifTable and ifXTable with GETBULK (ifDescr, ifName, ifAdminStatus, ifOperStatus,
    ifSpeed, ifHighSpeed, ifIn/OutOctets, ifHCIn/OutOctets, ifIn/OutErrors,
    ifCounterDiscontinuityTime). ``interfaces`` optionally selects interfaces by ifIndex, ifName or
    ifDescr, with shell wildcards (``Gi1/0/*``), case-insensitively; a selector that matches nothing
    is down ("eth9 not found"). Down when a selected interface is admin up and oper down,
    notPresent or lowerLayerDown (named in the message); degraded when admin up and oper testing or
    unknown. Admin-down interfaces are counted, never a failure.

Rates
    Traffic rates are counter deltas over the monotonic time between this check and the previous
    one of the same target and config, kept in memory by the check (at most
    :data:`MAX_REMEMBERED` monitors, least recently used dropped), so the first check after a start
    has no rates. 64-bit ifHC counters are used when the agent has them, else the 32-bit ones; a
    32-bit counter that went backwards wrapped once (2^32 is added); a 64-bit one that went backwards
    was reset. No rate is given that round when sysUpTime went backwards (agent restart; also once
    every 497 days when sysUpTime itself wraps), when ifCounterDiscontinuityTime changed, or when the
    counter switched between 32 and 64 bits. See :func:`counter_rates`.

Samples (labels: ``instance`` = the target; per interface also ``ifIndex`` and ``ifName`` (ifName,
else ifDescr))
    get mode: ``snmp_value{oid, name}`` for every numeric value (numbers, and strings that read as
    a number such as UCD laLoad); TimeTicks raw, in hundredths of a second.
    interfaces mode: ``snmp_sys_uptime_seconds``, ``snmp_if_admin_status``, ``snmp_if_oper_status``
    (IF-MIB codes: 1 up, 2 down, ...), ``snmp_if_speed_bps``, ``snmp_if_in_octets_total``,
    ``snmp_if_out_octets_total`` (the counter in use, 64- or 32-bit), ``snmp_if_in_errors_total``,
    ``snmp_if_out_errors_total``, and from the second check on ``snmp_if_in_bps``/``snmp_if_out_bps``.

Timing
    The check's timeout is split across ``retries`` + 1 tries (default 1 retry) and also bounds the
    whole check, so a dead host costs at most the timeout. v2c agents do not answer a wrong
    community, so it reads as no answer. v3 reports (unknown user, wrong digest) are named.

SNMP engines are costly to build (pysnmp compiles its MIB modules each time, ~60 ms of CPU) and
cache v3 discovery and localized keys, so they live on per event loop, shared by concurrent checks:
one for all v2c communities and one per v3 credential set (at most 32 idle ones, each replaced after
an hour). A v3 engine is retired when an agent that answered it stops answering (it may have a new
snmpEngineID at the same address), so such stale state costs one failed check.
:func:`close_engines` closes them at shutdown.
"""

from __future__ import annotations

import asyncio
import difflib
import fnmatch
import hashlib
import ipaddress
import logging
import math
import socket
import struct
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pyasn1.type import univ  # type: ignore[import-untyped]
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pysnmp.entity import config as snmp_config  # type: ignore[import-untyped]
from pysnmp.error import PySnmpError  # type: ignore[import-untyped]
from pysnmp.hlapi.v3arch.asyncio import (  # type: ignore[import-untyped]
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    Udp6TransportTarget,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
    usmAesBlumenthalCfb192Protocol,
    usmAesBlumenthalCfb256Protocol,
    usmAesCfb128Protocol,
    usmAesCfb192Protocol,
    usmAesCfb256Protocol,
    usmDESPrivProtocol,
    usmHMAC128SHA224AuthProtocol,
    usmHMAC192SHA256AuthProtocol,
    usmHMAC256SHA384AuthProtocol,
    usmHMAC384SHA512AuthProtocol,
    usmHMACMD5AuthProtocol,
    usmHMACSHAAuthProtocol,
    usmNoAuthProtocol,
    usmNoPrivProtocol,
)
from pysnmp.proto import errind, rfc1902, rfc1905  # type: ignore[import-untyped]

from opsdesk.metrics.samples import Sample, labels_of
from opsdesk.monitoring.checks.base import CheckConfig, CheckOutcome, CheckType, ProbeContext, register
from opsdesk.monitoring.checks.tcp import split_host_port

Oid = tuple[int, ...]
log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# The OIDs this module knows by name (Debian ships no MIB files). "scalar": one instance, ".0";
# "column": a table column, instances are the table's index.

_SYSTEM = "1.3.6.1.2.1.1"
_IF_ENTRY = "1.3.6.1.2.1.2.2.1"
_IFX_ENTRY = "1.3.6.1.2.1.31.1.1.1"
_HR = "1.3.6.1.2.1.25"
_UCD = "1.3.6.1.4.1.2021"

OIDS: dict[str, tuple[str, Literal["scalar", "column"]]] = {
    # SNMPv2-MIB system group
    "sysDescr": (f"{_SYSTEM}.1", "scalar"),
    "sysObjectID": (f"{_SYSTEM}.2", "scalar"),
    "sysUpTime": (f"{_SYSTEM}.3", "scalar"),
    "sysContact": (f"{_SYSTEM}.4", "scalar"),
    "sysName": (f"{_SYSTEM}.5", "scalar"),
    "sysLocation": (f"{_SYSTEM}.6", "scalar"),
    "sysServices": (f"{_SYSTEM}.7", "scalar"),
    "sysORLastChange": (f"{_SYSTEM}.8", "scalar"),
    # IF-MIB
    "ifNumber": ("1.3.6.1.2.1.2.1", "scalar"),
    "ifIndex": (f"{_IF_ENTRY}.1", "column"),
    "ifDescr": (f"{_IF_ENTRY}.2", "column"),
    "ifType": (f"{_IF_ENTRY}.3", "column"),
    "ifMtu": (f"{_IF_ENTRY}.4", "column"),
    "ifSpeed": (f"{_IF_ENTRY}.5", "column"),
    "ifPhysAddress": (f"{_IF_ENTRY}.6", "column"),
    "ifAdminStatus": (f"{_IF_ENTRY}.7", "column"),
    "ifOperStatus": (f"{_IF_ENTRY}.8", "column"),
    "ifLastChange": (f"{_IF_ENTRY}.9", "column"),
    "ifInOctets": (f"{_IF_ENTRY}.10", "column"),
    "ifInUcastPkts": (f"{_IF_ENTRY}.11", "column"),
    "ifInDiscards": (f"{_IF_ENTRY}.13", "column"),
    "ifInErrors": (f"{_IF_ENTRY}.14", "column"),
    "ifInUnknownProtos": (f"{_IF_ENTRY}.15", "column"),
    "ifOutOctets": (f"{_IF_ENTRY}.16", "column"),
    "ifOutUcastPkts": (f"{_IF_ENTRY}.17", "column"),
    "ifOutDiscards": (f"{_IF_ENTRY}.19", "column"),
    "ifOutErrors": (f"{_IF_ENTRY}.20", "column"),
    "ifName": (f"{_IFX_ENTRY}.1", "column"),
    "ifInMulticastPkts": (f"{_IFX_ENTRY}.2", "column"),
    "ifInBroadcastPkts": (f"{_IFX_ENTRY}.3", "column"),
    "ifOutMulticastPkts": (f"{_IFX_ENTRY}.4", "column"),
    "ifOutBroadcastPkts": (f"{_IFX_ENTRY}.5", "column"),
    "ifHCInOctets": (f"{_IFX_ENTRY}.6", "column"),
    "ifHCInUcastPkts": (f"{_IFX_ENTRY}.7", "column"),
    "ifHCOutOctets": (f"{_IFX_ENTRY}.10", "column"),
    "ifHCOutUcastPkts": (f"{_IFX_ENTRY}.11", "column"),
    "ifHighSpeed": (f"{_IFX_ENTRY}.15", "column"),
    "ifAlias": (f"{_IFX_ENTRY}.18", "column"),
    "ifCounterDiscontinuityTime": (f"{_IFX_ENTRY}.19", "column"),
    # HOST-RESOURCES-MIB
    "hrSystemUptime": (f"{_HR}.1.1", "scalar"),
    "hrSystemDate": (f"{_HR}.1.2", "scalar"),
    "hrSystemNumUsers": (f"{_HR}.1.5", "scalar"),
    "hrSystemProcesses": (f"{_HR}.1.6", "scalar"),
    "hrSystemMaxProcesses": (f"{_HR}.1.7", "scalar"),
    "hrMemorySize": (f"{_HR}.2.2", "scalar"),
    "hrStorageIndex": (f"{_HR}.2.3.1.1", "column"),
    "hrStorageType": (f"{_HR}.2.3.1.2", "column"),
    "hrStorageDescr": (f"{_HR}.2.3.1.3", "column"),
    "hrStorageAllocationUnits": (f"{_HR}.2.3.1.4", "column"),
    "hrStorageSize": (f"{_HR}.2.3.1.5", "column"),
    "hrStorageUsed": (f"{_HR}.2.3.1.6", "column"),
    "hrStorageAllocationFailures": (f"{_HR}.2.3.1.7", "column"),
    "hrDeviceDescr": (f"{_HR}.3.2.1.3", "column"),
    "hrDeviceStatus": (f"{_HR}.3.2.1.5", "column"),
    "hrProcessorFrwID": (f"{_HR}.3.3.1.1", "column"),
    "hrProcessorLoad": (f"{_HR}.3.3.1.2", "column"),
    # UCD-SNMP-MIB (Net-SNMP agents): memory (kB), load averages, CPU, disks
    "memTotalSwap": (f"{_UCD}.4.3", "scalar"),
    "memAvailSwap": (f"{_UCD}.4.4", "scalar"),
    "memTotalReal": (f"{_UCD}.4.5", "scalar"),
    "memAvailReal": (f"{_UCD}.4.6", "scalar"),
    "memTotalFree": (f"{_UCD}.4.11", "scalar"),
    "memMinimumSwap": (f"{_UCD}.4.12", "scalar"),
    "memShared": (f"{_UCD}.4.13", "scalar"),
    "memBuffer": (f"{_UCD}.4.14", "scalar"),
    "memCached": (f"{_UCD}.4.15", "scalar"),
    "memSysAvail": (f"{_UCD}.4.27", "scalar"),
    "memSwapError": (f"{_UCD}.4.100", "scalar"),
    "dskPath": (f"{_UCD}.9.1.2", "column"),
    "dskDevice": (f"{_UCD}.9.1.3", "column"),
    "dskTotal": (f"{_UCD}.9.1.6", "column"),
    "dskAvail": (f"{_UCD}.9.1.7", "column"),
    "dskUsed": (f"{_UCD}.9.1.8", "column"),
    "dskPercent": (f"{_UCD}.9.1.9", "column"),
    "dskPercentNode": (f"{_UCD}.9.1.10", "column"),
    "dskErrorFlag": (f"{_UCD}.9.1.100", "column"),
    "laNames": (f"{_UCD}.10.1.2", "column"),
    "laLoad": (f"{_UCD}.10.1.3", "column"),
    "laConfig": (f"{_UCD}.10.1.4", "column"),
    "laLoadInt": (f"{_UCD}.10.1.5", "column"),
    "laLoadFloat": (f"{_UCD}.10.1.6", "column"),
    "laErrorFlag": (f"{_UCD}.10.1.100", "column"),
    "ssCpuUser": (f"{_UCD}.11.9", "scalar"),
    "ssCpuSystem": (f"{_UCD}.11.10", "scalar"),
    "ssCpuIdle": (f"{_UCD}.11.11", "scalar"),
    "ssCpuRawUser": (f"{_UCD}.11.50", "scalar"),
    "ssCpuRawNice": (f"{_UCD}.11.51", "scalar"),
    "ssCpuRawSystem": (f"{_UCD}.11.52", "scalar"),
    "ssCpuRawIdle": (f"{_UCD}.11.53", "scalar"),
    "ssCpuRawWait": (f"{_UCD}.11.54", "scalar"),
    "ssCpuNumCpus": (f"{_UCD}.11.67", "scalar"),
}
_BY_LOWER = {name.lower(): name for name in OIDS}
_BY_OID = {tuple(int(p) for p in dotted.split(".")): name for name, (dotted, _) in OIDS.items()}
_MAX_ARC = 2**32 - 1


def oid_of(name: str) -> Oid:
    """The OID of a name this module carries (KeyError otherwise)."""
    return _parse_numeric(OIDS[name][0])


def _parse_numeric(text: str) -> Oid:
    parts = text.split(".")
    if len(parts) < 2 or len(parts) > 128 or not all(p.isdigit() for p in parts):
        raise ValueError(f"{text!r} is not a numeric OID such as 1.3.6.1.2.1.1.3.0")
    oid = tuple(int(p) for p in parts)
    if oid[0] > 2 or any(arc > _MAX_ARC for arc in oid):
        raise ValueError(f"{text!r} is not a valid OID")
    return oid


def dotted(oid: Oid) -> str:
    return ".".join(map(str, oid))


def name_of(oid: Oid) -> str:
    """``ifInOctets.2`` for a known OID (longest known prefix), else the dotted OID."""
    for cut in range(len(oid), 1, -1):
        name = _BY_OID.get(oid[:cut])
        if name is not None:
            rest = oid[cut:]
            return name + ("." + dotted(rest) if rest else "")
    return dotted(oid)


@dataclass(frozen=True)
class ResolvedOid:
    oid: Oid
    name: str  # e.g. "sysUpTime.0", "hrProcessorLoad", or the dotted OID when unknown
    walk: bool


def resolve_oid(text: str, walk: bool | None = None) -> ResolvedOid:
    """A name (``sysUpTime``, ``IF-MIB::ifInOctets.2``) or numeric OID to what to ask for.

    ValueError saying why for an unknown name or a malformed OID.
    """
    raw = text.strip().lstrip(".")
    if not raw:
        raise ValueError("the OID is empty")
    if raw[0].isdigit():
        oid = _parse_numeric(raw)
        return ResolvedOid(oid, name_of(oid), bool(walk))
    raw = raw.split("::", 1)[1] if "::" in raw else raw
    base, _, suffix_text = raw.partition(".")
    name = base if base in OIDS else _BY_LOWER.get(base.lower())
    if name is None:
        close = difflib.get_close_matches(base, list(OIDS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; give a numeric OID instead"
        raise ValueError(f"unknown OID name {base!r}{hint}")
    oid = _parse_numeric(OIDS[name][0])
    kind = OIDS[name][1]
    if suffix_text:
        suffix = _parse_numeric("1." + suffix_text)[1:] if "." in suffix_text else _suffix(suffix_text)
        return ResolvedOid(oid + suffix, name + "." + suffix_text, bool(walk))
    if walk is True:
        return ResolvedOid(oid, name, True)
    if kind == "scalar":
        return ResolvedOid((*oid, 0), name + ".0", False)
    if walk is False:
        raise ValueError(f"{name} is a table column: give an instance (e.g. {name}.1) or let it be walked")
    return ResolvedOid(oid, name, True)


def _suffix(text: str) -> Oid:
    if not text.isdigit() or int(text) > _MAX_ARC:
        raise ValueError(f"{text!r} is not a valid instance suffix")
    return (int(text),)


# --------------------------------------------------------------------------------------------------
# Config

AuthProtocol = Literal["none", "MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"]
PrivProtocol = Literal["none", "DES", "AES-128", "AES-192", "AES-256", "AES-192-C", "AES-256-C"]
SecurityLevel = Literal["noAuthNoPriv", "authNoPriv", "authPriv"]
Compare = Literal[">", ">=", "<", "<=", "==", "!="]

_AUTH = {
    "none": usmNoAuthProtocol,
    "MD5": usmHMACMD5AuthProtocol,
    "SHA": usmHMACSHAAuthProtocol,
    "SHA-224": usmHMAC128SHA224AuthProtocol,
    "SHA-256": usmHMAC192SHA256AuthProtocol,
    "SHA-384": usmHMAC256SHA384AuthProtocol,
    "SHA-512": usmHMAC384SHA512AuthProtocol,
}
_PRIV = {
    "none": usmNoPrivProtocol,
    "DES": usmDESPrivProtocol,
    "AES-128": usmAesCfb128Protocol,
    "AES-192": usmAesBlumenthalCfb192Protocol,
    "AES-256": usmAesBlumenthalCfb256Protocol,
    "AES-192-C": usmAesCfb192Protocol,
    "AES-256-C": usmAesCfb256Protocol,
}
_AUTH_ALIASES = {"NONE": "none", "SHA1": "SHA", "SHA-1": "SHA", "SHA224": "SHA-224", "SHA256": "SHA-256"}
_AUTH_ALIASES |= {"SHA384": "SHA-384", "SHA512": "SHA-512"}
_PRIV_ALIASES = {"NONE": "none", "AES": "AES-128", "AES128": "AES-128", "AES192": "AES-192"}
_PRIV_ALIASES |= {"AES256": "AES-256", "AES192C": "AES-192-C", "AES256C": "AES-256-C"}
_LEVELS = {"noauthnopriv": "noAuthNoPriv", "authnopriv": "authNoPriv", "authpriv": "authPriv"}
MIN_PASSWORD = 8  # RFC 3414 (and Net-SNMP) refuse shorter pass phrases


class SnmpOid(BaseModel):
    """One OID of a get check; a bare string stands for ``{"oid": ...}``."""

    model_config = ConfigDict(extra="forbid")

    oid: str = Field(description="numeric OID or a known name, e.g. sysUpTime.0 or hrProcessorLoad")
    label: str | None = Field(default=None, description="shown instead of the OID's name")
    warn: float | None = None
    critical: float | None = None
    compare: Compare = Field(default=">", description="value <compare> threshold is the bad case")
    walk: bool | None = Field(default=None, description="walk the subtree; default: for table columns")
    _resolved: ResolvedOid = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"oid": value} if isinstance(value, str) else value

    @field_validator("oid")
    @classmethod
    def _known(cls, value: str) -> str:
        resolve_oid(value)  # an unknown name or a malformed OID fails here, on this field
        return value.strip()

    @model_validator(mode="after")
    def _resolve(self) -> SnmpOid:
        self._resolved = resolve_oid(self.oid, self.walk)
        return self

    @property
    def resolved(self) -> ResolvedOid:
        return self._resolved

    @property
    def shown_name(self) -> str:
        return self.label or self._resolved.name


class SnmpConfig(CheckConfig):
    version: Literal["2c", "3"] = Field(default="2c", description="SNMP version")
    community: str = Field(default="public", min_length=1, description="v2c community (secret)")
    username: str | None = Field(default=None, validate_default=True, description="v3 user name")
    auth_protocol: AuthProtocol = Field(default="none", description="v3 authentication")
    auth_password: str | None = Field(default=None, validate_default=True, description="v3, secret")
    priv_protocol: PrivProtocol = Field(
        default="none", validate_default=True, description="v3 privacy (encryption); -C: Cisco key extension"
    )
    priv_password: str | None = Field(default=None, validate_default=True, description="v3, secret")
    security_level: SecurityLevel | None = Field(
        default=None, validate_default=True, description="v3; optional, follows from the protocols"
    )
    context: str = Field(default="", description="v3 context name")
    mode: Literal["get", "interfaces"] = Field(
        default="get", description="get: read the OIDs; interfaces: IF-MIB status and traffic"
    )
    oids: list[SnmpOid] = Field(
        default_factory=list,
        max_length=64,
        validate_default=True,
        description="get mode: names (sysUpTime.0, hrProcessorLoad) or numeric OIDs, each optionally "
        "{oid, warn, critical, compare, label, walk}",
    )
    interfaces: list[str] = Field(
        default_factory=list,
        max_length=256,
        description="interfaces mode: ifIndex, ifName or ifDescr, wildcards allowed; default all",
    )
    retries: int = Field(default=1, ge=0, le=5, description="tries after the first; the timeout is split")

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        text = str(value).strip().lower().removeprefix("v") if isinstance(value, str | int) else value
        if text in ("1", "2c", "2", "3"):
            if text == "1":
                raise ValueError("SNMPv1 is not supported: use 2c or 3")
            return "2c" if text == "2" else text
        return value

    @field_validator("auth_protocol", mode="before")
    @classmethod
    def _auth_name(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        key = value.strip().upper()
        return _AUTH_ALIASES.get(key, key)

    @field_validator("priv_protocol", mode="before")
    @classmethod
    def _priv_name(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        key = value.strip().upper()
        return _PRIV_ALIASES.get(key.replace("-", ""), key)

    @field_validator("security_level", mode="before")
    @classmethod
    def _level_name(cls, value: Any) -> Any:
        return _LEVELS.get(value.strip().lower(), value) if isinstance(value, str) else value

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("version") == "3" and not (value or "").strip():
            raise ValueError("SNMPv3 needs a username")
        return value

    @field_validator("auth_password")
    @classmethod
    def _auth_password(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("version") == "3" and info.data.get("auth_protocol", "none") != "none":
            _check_password(value, f"auth_protocol {info.data['auth_protocol']}")
        return value

    @field_validator("priv_protocol")
    @classmethod
    def _priv_needs_auth(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("version") == "3" and value != "none" and info.data.get("auth_protocol") == "none":
            raise ValueError("privacy needs authentication: set auth_protocol too")
        return value

    @field_validator("priv_password")
    @classmethod
    def _priv_password(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("version") == "3" and info.data.get("priv_protocol", "none") != "none":
            _check_password(value, f"priv_protocol {info.data['priv_protocol']}")
        return value

    @field_validator("security_level")
    @classmethod
    def _level(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or info.data.get("version") != "3":
            return value
        if "auth_protocol" not in info.data or "priv_protocol" not in info.data:
            return value  # reported on those fields already
        derived = _derive_level(info.data["auth_protocol"], info.data["priv_protocol"])
        if value != derived:
            raise ValueError(
                f"is {value} but auth_protocol {info.data['auth_protocol']} and priv_protocol "
                f"{info.data['priv_protocol']} make {derived}"
            )
        return value

    @field_validator("oids")
    @classmethod
    def _oids(cls, value: list[SnmpOid], info: ValidationInfo) -> list[SnmpOid]:
        if info.data.get("mode", "get") == "get" and not value:
            raise ValueError("list at least one OID to read, e.g. sysUpTime.0")
        return value

    @field_validator("interfaces", mode="before")
    @classmethod
    def _interfaces(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [
                str(v).strip() if isinstance(v, int | str) and not isinstance(v, bool) else v for v in value
            ]
        return value

    @field_validator("interfaces")
    @classmethod
    def _no_empty_selector(cls, value: list[str]) -> list[str]:
        if any(not v for v in value):
            raise ValueError("an interface selector is empty")
        return value

    @property
    def level(self) -> SecurityLevel:
        return _derive_level(self.auth_protocol, self.priv_protocol)


def _check_password(value: str | None, needed_by: str) -> None:
    if not value:
        raise ValueError(f"needed with {needed_by}")
    if len(value) < MIN_PASSWORD:
        raise ValueError(f"must be at least {MIN_PASSWORD} characters (RFC 3414)")


def _derive_level(auth: str, priv: str) -> SecurityLevel:
    if auth == "none":
        return "noAuthNoPriv"
    return "authNoPriv" if priv == "none" else "authPriv"


# --------------------------------------------------------------------------------------------------
# Values


def plain(value: Any) -> int | float | str | None:
    """A pysnmp value as a Python value; None for Null and the exception values."""
    if isinstance(value, rfc1905.NoSuchObject | rfc1905.NoSuchInstance | rfc1905.EndOfMibView | univ.Null):
        return None
    if isinstance(value, univ.Integer):
        return int(value)
    if isinstance(value, rfc1902.IpAddress):
        return ".".join(str(b) for b in bytes(value))
    if isinstance(value, rfc1902.Opaque):
        return _opaque(bytes(value))
    if isinstance(value, univ.OctetString):
        return _text(bytes(value))
    if isinstance(value, univ.ObjectIdentifier):
        return dotted(tuple(value))
    return str(value)


def _opaque(data: bytes) -> float | str:
    # Net-SNMP wraps floats (UCD laLoadFloat) and doubles in Opaque: 9f 78 04 <float> / 9f 79 08 <double>
    if len(data) == 7 and data[:3] == b"\x9f\x78\x04":
        return round(float(struct.unpack(">f", data[3:])[0]), 6)
    if len(data) == 11 and data[:3] == b"\x9f\x79\x08":
        return float(struct.unpack(">d", data[3:])[0])
    return data.hex(":")


def _text(data: bytes) -> str:
    stripped = data.rstrip(b"\x00")
    try:
        text = stripped.decode("utf-8")
    except UnicodeDecodeError:
        return data.hex(":")
    if all(c.isprintable() or c in "\t\r\n" for c in text):
        return text
    return data.hex(":")


def number(value: int | float | str | None) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = float(value.strip())
        except ValueError:
            return None
        return parsed if math.isfinite(parsed) else None
    return None


def _show(value: Any, shown: int | float | str | None) -> str:
    if isinstance(value, rfc1902.TimeTicks):
        return f"{_duration(int(value) / 100)} ({int(value)})"
    text = str(shown)
    return text if len(text) <= 60 else text[:59] + "…"


def _duration(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{days}d " if days else "") + f"{hours}:{minutes:02d}:{secs:02d}"


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": lambda v, t: v > t,
    ">=": lambda v, t: v >= t,
    "<": lambda v, t: v < t,
    "<=": lambda v, t: v <= t,
    "==": lambda v, t: v == t,
    "!=": lambda v, t: v != t,
}


# --------------------------------------------------------------------------------------------------
# Counters and rates


@dataclass(frozen=True)
class CounterReading:
    value: int
    bits: int  # 32 or 64


@dataclass(frozen=True)
class Snapshot:
    """The counters of one check: what the next check's rates are computed against."""

    at: float  # monotonic seconds when read
    uptime: int | None  # sysUpTime, hundredths of a second
    counters: Mapping[tuple[int, str], CounterReading]  # (ifIndex, "in_octets") -> reading
    discontinuity: Mapping[int, int] = field(default_factory=dict)  # ifCounterDiscontinuityTime


def counter_delta(previous: CounterReading, current: CounterReading) -> int | None:
    """How much a counter grew; a Counter32 that went backwards wrapped once, a Counter64 was reset."""
    if previous.bits != current.bits:
        return None
    if current.value >= previous.value:
        return current.value - previous.value
    if current.bits == 32:
        return current.value + 2**32 - previous.value
    return None


def counter_rates(previous: Snapshot | None, current: Snapshot) -> dict[tuple[int, str], float]:
    """Per-second rates of the counters in both snapshots; none after an agent restart."""
    if previous is None:
        return {}
    elapsed = current.at - previous.at
    if elapsed <= 0:
        return {}
    if _restarted(previous, current):
        return {}  # its counters may have restarted too
    rates: dict[tuple[int, str], float] = {}
    for key, reading in current.counters.items():
        before = previous.counters.get(key)
        if before is None:
            continue
        if previous.discontinuity.get(key[0]) != current.discontinuity.get(key[0]):
            continue
        delta = counter_delta(before, reading)
        if delta is not None:
            rates[key] = delta / elapsed
    return rates


def _restarted(previous: Snapshot, current: Snapshot) -> bool:
    """sysUpTime went backwards: the agent restarted."""
    return previous.uptime is not None and current.uptime is not None and current.uptime < previous.uptime


def counter_reading(value: Any) -> CounterReading | None:
    if isinstance(value, rfc1902.Counter64):
        return CounterReading(int(value), 64)
    if isinstance(value, rfc1902.Counter32):
        return CounterReading(int(value), 32)
    return None


def pick_counters(row: Mapping[str, Any]) -> dict[str, CounterReading]:
    """The octet counters of one ifTable/ifXTable row: 64-bit ifHC ones when the agent has them."""
    picked: dict[str, CounterReading] = {}
    for key, wide, narrow in (
        ("in_octets", "ifHCInOctets", "ifInOctets"),
        ("out_octets", "ifHCOutOctets", "ifOutOctets"),
    ):
        reading = counter_reading(row.get(wide)) or counter_reading(row.get(narrow))
        if reading is not None:
            picked[key] = reading
    return picked


def format_bps(bps: float) -> str:
    for unit, scale in (("Tbit/s", 1e12), ("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= scale:
            return f"{bps / scale:.3g} {unit}"
    return f"{bps:.0f} bit/s"


# --------------------------------------------------------------------------------------------------
# Talking to the agent


class SnmpFailure(Exception):
    """The agent answered, but not with what we asked for; the message says why."""


class _NoAnswer(Exception):
    pass


_MAX_ENGINES = 32  # per event loop; idle ones beyond this are closed, least recently used first
_ENGINE_MAX_AGE = 3600.0  # seconds; then replaced, which also drops targets of deleted monitors


@dataclass
class _Engine:
    created: float
    build: asyncio.Future[Any]  # the SnmpEngine, built in a thread
    users: int = 0
    retired: bool = False
    answered: set[str] = field(default_factory=set)  # agents ("host:port") that answered through it

    @property
    def engine(self) -> Any:
        return self.build.result()


class _Engines:
    """Long-lived SNMP engines per event loop, one per credential set, shared by concurrent checks.

    One engine serves every v2c community (each is its own entry in the engine); a v3 engine holds
    one user, so each v3 credential set gets its own engine. A v3 engine is retired (closed once its
    last check ends) when an agent that answered it before stops answering, so discovery state
    about an agent that changed (a new snmpEngineID at the same address) does not outlive one
    failed check, while a host that is simply dead does not cost a new engine per check. Engines
    are built in a thread: building one takes ~60 ms of CPU that would otherwise stall every check
    in flight.
    """

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, OrderedDict[str, _Engine]] = (
            weakref.WeakKeyDictionary()
        )

    async def acquire(self, key: str) -> _Engine:
        engines = self._by_loop.setdefault(asyncio.get_running_loop(), OrderedDict())
        now = time.monotonic()
        entry = engines.get(key)
        if entry is not None and (entry.retired or now - entry.created > _ENGINE_MAX_AGE):
            self._retire(entry)
            entry = None
        if entry is None:
            entry = engines[key] = _Engine(now, asyncio.ensure_future(asyncio.to_thread(SnmpEngine)))
        engines.move_to_end(key)
        entry.users += 1
        try:
            await asyncio.shield(entry.build)  # a check timing out must not cancel it for the others
        except BaseException:
            entry.users -= 1
            if entry.build.done() and engines.get(key) is entry:
                del engines[key]  # the build failed: the next check tries again
            raise
        idle = [k for k, e in engines.items() if e.users == 0]
        for other_key in idle[: max(0, len(engines) - _MAX_ENGINES)]:
            self._retire(engines.pop(other_key))
        return entry

    def release(self, entry: _Engine, retire: bool = False) -> None:
        entry.users -= 1
        if retire:
            self._retire(entry)
        elif entry.retired and entry.users == 0:
            _close(entry.build)

    def _retire(self, entry: _Engine) -> None:
        if not entry.retired:
            entry.retired = True
            if entry.users == 0:
                _close(entry.build)

    def close_all(self) -> None:
        """Close the running loop's engines (for a prober shutting down)."""
        for entry in self._by_loop.pop(asyncio.get_running_loop(), OrderedDict()).values():
            entry.retired = True
            _close(entry.build)


def _close(build: asyncio.Future[Any]) -> None:
    """Close an engine's sockets and dispatcher; never raises (it runs as a check ends)."""
    if not build.done() or build.cancelled() or build.exception() is not None:
        return
    engine = build.result()
    try:
        cache = engine.get_user_context("CommandGeneratorLcdConfigurator") or {}
        for domain, (transport, _) in list(cache.get("tran", {}).items()):
            transport.close_transport()  # first, so no late answer reaches a dispatcher that is gone
            snmp_config.delete_transport(engine, domain)
        for entries in cache.values():
            entries.clear()
        if engine.transport_dispatcher is not None:
            engine.close_dispatcher()
    except Exception:
        log.warning("could not close an SNMP engine cleanly", exc_info=True)


async def close_engines() -> None:
    """Close the SNMP engines of the running event loop; the prober may call this when it stops."""
    _ENGINES.close_all()


def _engine_key(config: SnmpConfig) -> str:
    if config.version == "2c":
        return "2c"
    level = config.level
    parts = [config.username or "", config.auth_protocol, config.priv_protocol]
    parts += [config.auth_password or "" if level != "noAuthNoPriv" else ""]
    parts += [config.priv_password or "" if level == "authPriv" else ""]
    return "3:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()


_ENGINES = _Engines()
ENGINE_BUILD_TIMEOUT = 60.0
_BULK_VARBINDS = 100  # varbinds asked for per GETBULK request
_MAX_ROWS = 2000  # per walked column


class _Session:
    """One check's conversation with one agent."""

    def __init__(self, engine: Any, auth: Any, transport: Any, config: SnmpConfig) -> None:
        self.engine = engine
        self.auth = auth
        self.transport = transport
        self.config = config
        self.context = ContextData(contextName=config.context.encode()) if config.context else ContextData()
        self.answered = False  # the agent answered at least once

    async def get(self, oids: Sequence[Oid]) -> list[tuple[Oid, Any]]:
        out: list[tuple[Oid, Any]] = []
        for start in range(0, len(oids), 32):
            chunk = oids[start : start + 32]
            result = await get_cmd(
                self.engine, self.auth, self.transport, self.context, *_varbinds(chunk), lookupMib=False
            )
            out.extend(self._check(result, chunk))
        return out

    async def bulk(self, oids: Sequence[Oid], repetitions: int) -> list[tuple[Oid, Any]]:
        result = await bulk_cmd(
            self.engine,
            self.auth,
            self.transport,
            self.context,
            0,
            repetitions,
            *_varbinds(oids),
            lookupMib=False,
        )
        return self._check(result, oids)

    def _check(self, result: tuple[Any, Any, Any, Any], asked: Sequence[Oid]) -> list[tuple[Oid, Any]]:
        indication, status, index, varbinds = result
        if indication:
            raise self._indication(indication)
        self.answered = True
        if status and int(status) != 0:
            at = asked[int(index) - 1] if 0 < int(index) <= len(asked) else None
            raise _StatusError(str(status.prettyPrint() if hasattr(status, "prettyPrint") else status), at)
        return [(tuple(vb[0]), vb[1]) for vb in varbinds]

    def _indication(self, indication: Any) -> Exception:
        user = self.config.username
        if isinstance(indication, errind.RequestTimedOut):
            return _NoAnswer()
        if isinstance(indication, errind.UnknownUserName):
            return SnmpFailure(f"SNMPv3 user {user!r} is unknown to the agent (usmStatsUnknownUserNames)")
        if isinstance(indication, errind.WrongDigest):
            return SnmpFailure(
                f"SNMPv3 authentication failed for user {user!r}: wrong auth password or auth protocol "
                "(usmStatsWrongDigests)"
            )
        if isinstance(indication, errind.UnsupportedSecurityLevel):
            return SnmpFailure(
                f"the agent does not allow security level {self.config.level} for user {user!r} "
                "(usmStatsUnsupportedSecLevels)"
            )
        if isinstance(indication, errind.DecryptionError):
            return SnmpFailure(
                f"SNMPv3 decryption failed for user {user!r}: wrong privacy password or privacy protocol "
                "(usmStatsDecryptionErrors)"
            )
        if isinstance(indication, errind.NotInTimeWindow):
            return SnmpFailure("SNMPv3 message outside the agent's time window (usmStatsNotInTimeWindows)")
        if isinstance(indication, errind.UnknownEngineID):
            return SnmpFailure("the agent does not know the SNMPv3 engine ID (usmStatsUnknownEngineIDs)")
        return SnmpFailure(f"SNMP error: {indication}")

    async def walk(self, columns: Sequence[Oid], max_rows: int = _MAX_ROWS) -> list[dict[Oid, Any]]:
        """Every instance under each of ``columns``, walked side by side with GETBULK."""
        results: list[dict[Oid, Any]] = [{} for _ in columns]
        cursor = list(columns)
        active = list(range(len(columns)))
        limit = _BULK_VARBINDS
        while active:
            repetitions = max(1, min(50, limit // len(active)))
            try:
                varbinds = await self.bulk([cursor[i] for i in active], repetitions)
            except _StatusError as exc:
                if exc.status == "tooBig" and limit > len(active):
                    limit //= 2
                    continue
                raise
            done: set[int] = set()
            progressed = False
            for k, (oid, value) in enumerate(varbinds):
                i = active[k % len(active)]
                if i in done:
                    continue
                column = columns[i]
                if (
                    isinstance(value, rfc1905.EndOfMibView)
                    or oid[: len(column)] != column
                    or len(oid) <= len(column)
                    or oid <= cursor[i]
                ):
                    done.add(i)
                    continue
                results[i][oid[len(column) :]] = value
                cursor[i] = oid
                progressed = True
                if len(results[i]) >= max_rows:
                    done.add(i)
            if not progressed and not done:
                raise SnmpFailure("the agent's GETBULK answers make no progress")
            active = [i for i in active if i not in done]
        return results


class _StatusError(Exception):
    def __init__(self, status: str, at: Oid | None) -> None:
        super().__init__(status)
        self.status = status
        self.at = at

    def describe(self) -> str:
        where = f" for {name_of(self.at)}" if self.at else ""
        if self.status in ("authorizationError", "noAccess"):
            return f"the agent refused access{where} ({self.status}): check its access rules and view"
        return f"the agent answered {self.status}{where}"


def _varbinds(oids: Sequence[Oid]) -> list[Any]:
    return [ObjectType(ObjectIdentity(dotted(oid))) for oid in oids]


def _auth_data(config: SnmpConfig) -> Any:
    if config.version == "2c":
        return CommunityData(config.community, mpModel=1)
    auth = config.auth_protocol
    priv = config.priv_protocol if auth != "none" else "none"
    return UsmUserData(
        config.username,
        authKey=config.auth_password if auth != "none" else None,
        privKey=config.priv_password if priv != "none" else None,
        authProtocol=_AUTH[auth],
        privProtocol=_PRIV[priv],
    )


async def _transport(host: str, port: int, per_try: float, retries: int) -> Any:
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        address = host
    except ValueError:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        family, address = infos[0][0], str(infos[0][4][0])
    kind = Udp6TransportTarget if family == socket.AF_INET6 else UdpTransportTarget
    return await kind.create((address, port), timeout=per_try, retries=retries)


# --------------------------------------------------------------------------------------------------
# The check

MAX_REMEMBERED = 4096  # monitors whose last counters are kept for rates

_IF_COLUMNS = (
    "ifDescr",
    "ifName",
    "ifAdminStatus",
    "ifOperStatus",
    "ifSpeed",
    "ifHighSpeed",
    "ifInOctets",
    "ifOutOctets",
    "ifHCInOctets",
    "ifHCOutOctets",
    "ifInErrors",
    "ifOutErrors",
    "ifCounterDiscontinuityTime",
)
OPER_STATUS = {
    1: "up",
    2: "down",
    3: "testing",
    4: "unknown",
    5: "dormant",
    6: "notPresent",
    7: "lowerLayerDown",
}
_OPER_DOWN = {2, 6, 7}
_OPER_DOUBTFUL = {3, 4}
_SHOWN_VALUES = 8
_SHOWN_RATES = 3


@dataclass
class _Interface:
    index: int
    name: str
    descr: str
    row: dict[str, Any]

    def status(self, column: str) -> int | None:
        value = self.row.get(column)
        return int(value) if isinstance(value, univ.Integer) else None


@register
class SnmpCheck(CheckType):
    name = "snmp"
    config_model = SnmpConfig
    secret_fields = ("community", "auth_password", "priv_password")

    def __init__(self) -> None:
        self._snapshots: OrderedDict[str, Snapshot] = OrderedDict()
        self.monotonic: Callable[[], float] = time.monotonic
        self.wall_clock: Callable[[], float] = time.time

    def validate_target(self, target: str) -> str:
        split_host_port(target, 161)
        return target.strip()

    async def run(self, target: str, config: SnmpConfig, timeout: float, ctx: ProbeContext) -> CheckOutcome:
        try:
            host, port = split_host_port(target, 161)
        except ValueError as exc:
            return CheckOutcome(False, f"bad target: {exc}")
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        per_try = max(0.1, timeout / (config.retries + 1))
        started = time.perf_counter()
        session: _Session | None = None
        engine: _Engine | None = None
        suspect = False  # the engine may hold stale state about this agent: retire it (v3)
        try:
            # The engine is our own cost (built once per credential set, ~60 ms of CPU, longer on a
            # busy machine while many are built at once): it is not the agent's answer time, so it
            # is bounded on its own and the check's timeout starts after it.
            async with asyncio.timeout(ENGINE_BUILD_TIMEOUT):
                engine = await _ENGINES.acquire(_engine_key(config))
            started = time.perf_counter()
            async with asyncio.timeout(timeout):
                transport = await _transport(host, port, per_try, config.retries)
                session = _Session(engine.engine, _auth_data(config), transport, config)
                if config.mode == "interfaces":
                    outcome = await self._interfaces(session, target, config)
                else:
                    outcome = await self._get(session, target, config)
                engine.answered.add(where)
        except (TimeoutError, _NoAnswer):
            if engine is None:
                why = f"the prober could not build an SNMP engine within {ENGINE_BUILD_TIMEOUT:g}s"
                return CheckOutcome(False, f"{why} (overloaded)")
            # An agent that answered this engine before and now does not may have a new snmpEngineID.
            suspect = engine is not None and where in engine.answered
            return self._no_answer(where, timeout, config, session)
        except SnmpFailure as exc:
            return CheckOutcome(False, str(exc), _ms(started))
        except _StatusError as exc:
            return CheckOutcome(False, exc.describe(), _ms(started))
        except socket.gaierror as exc:
            return CheckOutcome(False, f"cannot resolve host {host}: {exc.strerror or exc}")
        except (PySnmpError, OSError, ValueError) as exc:
            suspect = True
            return CheckOutcome(False, f"SNMP error: {type(exc).__name__}: {exc}")
        except Exception as exc:  # never raise out of a check
            suspect = True
            return CheckOutcome(False, f"check error: {type(exc).__name__}: {exc}")
        finally:
            if engine is not None:
                _ENGINES.release(engine, retire=suspect and config.version == "3")
        outcome.latency_ms = _ms(started)
        return outcome

    def _no_answer(
        self, where: str, timeout: float, config: SnmpConfig, session: _Session | None
    ) -> CheckOutcome:
        if session is not None and session.answered:
            return CheckOutcome(False, f"{where} answered but did not finish within {timeout:g}s")
        if config.version == "2c":
            hint = "check the community, and that the agent answers this host"
        else:
            hint = "check the host, the port, and the privacy protocol and password"
        return CheckOutcome(False, f"no SNMP answer from {where} within {timeout:g}s ({hint})")

    # ----------------------------------------------------------------------------------- get mode

    async def _get(self, session: _Session, target: str, config: SnmpConfig) -> CheckOutcome:
        singles = [spec for spec in config.oids if not spec.resolved.walk]
        walked = [spec for spec in config.oids if spec.resolved.walk]
        got = dict(await session.get([spec.resolved.oid for spec in singles])) if singles else {}
        tables = await session.walk([spec.resolved.oid for spec in walked]) if walked else []
        table_of = {id(spec): rows for spec, rows in zip(walked, tables, strict=True)}
        now_ms = int(self.wall_clock() * 1000)
        critical: list[str] = []
        warning: list[str] = []
        shown: list[str] = []
        samples: list[Sample] = []
        for spec in config.oids:
            base = spec.resolved
            if not base.walk:
                instances = [(base.oid, spec.shown_name, got.get(base.oid))]
            else:
                rows = table_of[id(spec)]
                if not rows:
                    critical.append(f"{spec.shown_name}: nothing under {dotted(base.oid)}")
                    continue
                instances = [
                    (base.oid + sfx, f"{spec.shown_name}.{dotted(sfx)}", v) for sfx, v in rows.items()
                ]
            for oid, label, raw in instances:
                if raw is None:
                    critical.append(f"{label}: missing from the agent's answer")
                    continue
                if isinstance(raw, rfc1905.NoSuchObject):
                    critical.append(f"{label}: no such object on the agent")
                    continue
                if isinstance(raw, rfc1905.NoSuchInstance):
                    critical.append(f"{label}: no such instance on the agent")
                    continue
                if isinstance(raw, rfc1905.EndOfMibView):
                    critical.append(f"{label}: end of the agent's MIB view")
                    continue
                value = plain(raw)
                numeric = number(value)
                if numeric is not None:
                    labels = labels_of({"instance": target, "oid": dotted(oid), "name": label})
                    samples.append(Sample("snmp_value", labels, now_ms, numeric))
                text = f"{label} = {_show(raw, value)}"
                verdict = _judge(spec, numeric)
                if verdict == "not a number":
                    critical.append(f"{text}: not a number, cannot compare")
                elif verdict is not None:
                    (critical if verdict.startswith("critical") else warning).append(f"{text} ({verdict})")
                else:
                    shown.append(text)
        parts = critical + warning + shown
        message = "; ".join(parts[:_SHOWN_VALUES])
        if len(parts) > _SHOWN_VALUES:
            message += f" (+{len(parts) - _SHOWN_VALUES} more)"
        return CheckOutcome(not critical, message, degraded=bool(warning) and not critical, samples=samples)

    # ---------------------------------------------------------------------------- interfaces mode

    async def _interfaces(self, session: _Session, target: str, config: SnmpConfig) -> CheckOutcome:
        uptime_oid = (*oid_of("sysUpTime"), 0)
        ((_, uptime_raw),) = await session.get([uptime_oid])
        uptime = int(uptime_raw) if isinstance(uptime_raw, univ.Integer) else None
        tables = await session.walk([oid_of(name) for name in _IF_COLUMNS])
        read_at = self.monotonic()
        now_ms = int(self.wall_clock() * 1000)
        rows: dict[int, dict[str, Any]] = {}
        for name, table in zip(_IF_COLUMNS, tables, strict=True):
            for suffix, value in table.items():
                if len(suffix) == 1:
                    rows.setdefault(suffix[0], {})[name] = value
        interfaces = []
        for index in sorted(rows):
            row = rows[index]
            descr = str(plain(row["ifDescr"])) if "ifDescr" in row else ""
            name = str(plain(row["ifName"])) if "ifName" in row else ""
            interfaces.append(_Interface(index, name or descr or f"if{index}", descr, row))
        if not interfaces:
            return CheckOutcome(False, "the agent shows no interfaces (ifTable empty or outside its view)")
        selected, missing = _select(interfaces, config.interfaces)

        key = target + "|" + hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]
        current = Snapshot(
            read_at,
            uptime,
            {(i.index, k): r for i in selected for k, r in pick_counters(i.row).items()},
            {
                i.index: int(i.row["ifCounterDiscontinuityTime"])
                for i in selected
                if _has(i, "ifCounterDiscontinuityTime")
            },
        )
        previous = self._snapshots.pop(key, None)
        rates = counter_rates(previous, current)
        self._snapshots[key] = current
        while len(self._snapshots) > MAX_REMEMBERED:
            self._snapshots.popitem(last=False)

        samples: list[Sample] = []
        if uptime is not None:
            samples.append(
                Sample("snmp_sys_uptime_seconds", labels_of({"instance": target}), now_ms, uptime / 100)
            )
        down: list[str] = []
        doubtful: list[str] = []
        up = admin_down = 0
        traffic: list[tuple[float, str]] = []
        for iface in selected:
            labels = labels_of({"instance": target, "ifIndex": str(iface.index), "ifName": iface.name})
            samples.extend(_interface_samples(iface, labels, now_ms, current, rates))
            admin, oper = iface.status("ifAdminStatus"), iface.status("ifOperStatus")
            oper_text = OPER_STATUS.get(oper or 0, str(oper))
            if admin not in (None, 1):
                admin_down += 1
            elif oper in _OPER_DOWN:
                down.append(iface.name if oper == 2 else f"{iface.name} ({oper_text})")
            elif oper in _OPER_DOUBTFUL:
                doubtful.append(f"{iface.name} {oper_text}")
            else:
                up += 1
            rate_in, rate_out = rates.get((iface.index, "in_octets")), rates.get((iface.index, "out_octets"))
            if (rate_in or rate_out) and admin in (None, 1):
                text = iface.name
                text += f" in {format_bps(rate_in * 8)}" if rate_in is not None else ""
                text += f" out {format_bps(rate_out * 8)}" if rate_out is not None else ""
                traffic.append(((rate_in or 0) + (rate_out or 0), text))

        status = [f"{up} interface{'s' if up != 1 else ''} up"]
        if down:
            status.append(", ".join(down) + " down")
        status += doubtful
        if admin_down:
            status.append(f"{admin_down} admin down")
        if missing:
            status.insert(0, ", ".join(missing) + " not found")
        parts = [", ".join(status)]
        if traffic:
            traffic.sort(key=lambda t: -t[0])
            parts.append("; ".join(text for _, text in traffic[:_SHOWN_RATES]))
        elif rates:
            parts.append("no traffic")
        elif current.counters:
            restarted = previous is not None and _restarted(previous, current)
            parts.append(("agent restarted: " if restarted else "") + "traffic rates from the next check")
        failed = bool(down or missing)
        return CheckOutcome(
            not failed, "; ".join(parts), degraded=bool(doubtful) and not failed, samples=samples
        )


def _has(iface: _Interface, column: str) -> bool:
    return isinstance(iface.row.get(column), univ.Integer)


def _select(interfaces: list[_Interface], selectors: list[str]) -> tuple[list[_Interface], list[str]]:
    """The interfaces the selectors name (all without selectors) and the selectors that name none."""
    if not selectors:
        return interfaces, []
    chosen: dict[int, _Interface] = {}
    missing: list[str] = []
    for selector in selectors:
        pattern = selector.lower()
        hits = [
            i
            for i in interfaces
            if selector == str(i.index)
            or fnmatch.fnmatchcase(i.name.lower(), pattern)
            or (i.descr and fnmatch.fnmatchcase(i.descr.lower(), pattern))
        ]
        if not hits:
            missing.append(selector)
        for i in hits:
            chosen[i.index] = i
    return [chosen[k] for k in sorted(chosen)], missing


def _interface_samples(
    iface: _Interface,
    labels: tuple[tuple[str, str], ...],
    now_ms: int,
    current: Snapshot,
    rates: Mapping[tuple[int, str], float],
) -> list[Sample]:
    out: list[Sample] = []

    def add(name: str, value: float | None) -> None:
        if value is not None:
            out.append(Sample(name, labels, now_ms, float(value)))

    add("snmp_if_admin_status", iface.status("ifAdminStatus"))
    add("snmp_if_oper_status", iface.status("ifOperStatus"))
    high, low = iface.status("ifHighSpeed"), iface.status("ifSpeed")
    add("snmp_if_speed_bps", high * 1_000_000 if high else low)
    for direction in ("in", "out"):
        reading = current.counters.get((iface.index, f"{direction}_octets"))
        add(f"snmp_if_{direction}_octets_total", reading.value if reading else None)
        errors = counter_reading(iface.row.get(f"if{direction.capitalize()}Errors"))
        add(f"snmp_if_{direction}_errors_total", errors.value if errors else None)
        rate = rates.get((iface.index, f"{direction}_octets"))
        add(f"snmp_if_{direction}_bps", rate * 8 if rate is not None else None)
    return out


def _judge(spec: SnmpOid, value: float | None) -> str | None:
    """None when fine; else "critical > 95", "warn > 80" or "not a number"."""
    if spec.critical is None and spec.warn is None:
        return None
    if value is None:
        return "not a number"
    compare = _COMPARE[spec.compare]
    if spec.critical is not None and compare(value, spec.critical):
        return f"critical {spec.compare} {spec.critical:g}"
    if spec.warn is not None and compare(value, spec.warn):
        return f"warn {spec.compare} {spec.warn:g}"
    return None


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
