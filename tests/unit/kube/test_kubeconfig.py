"""Several $KUBECONFIG files merged as kubectl merges them: first definition of a name wins, current-context
from the first file that sets it, relative paths against the file that wrote them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from incluster_ipam.kube import ConfigError, load_config
from incluster_ipam.kube.config import parse_kubeconfig
from incluster_ipam.kube.kubeconfig import merge, precedence


def config(
    clusters: dict[str, Any], users: dict[str, Any], contexts: dict[str, Any], current: str | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in clusters.items()],
        "users": [{"name": n, "user": u} for n, u in users.items()],
        "contexts": [{"name": n, "context": c} for n, c in contexts.items()],
    }
    if current is not None:
        data["current-context"] = current
    return data


def write(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def test_first_file_to_define_a_name_wins_and_current_context_comes_from_the_first_that_sets_it() -> None:
    first = config({"shared": {"server": "https://first"}}, {"u": {"token": "one"}}, {"a": {"cluster": "x"}})
    second = config(
        {"shared": {"server": "https://second"}, "only-second": {"server": "https://only"}},
        {"u": {"token": "two"}},
        {"b": {"cluster": "only-second", "user": "u"}},
        current="b",
    )
    third = config({}, {}, {}, current="a")
    merged = merge([(Path("/1/config"), first), (Path("/2/config"), second), (Path("/3/config"), third)])
    assert merged.clusters["shared"].body == {"server": "https://first"}
    assert merged.clusters["only-second"].file == Path("/2/config")
    assert merged.users["u"].body == {"token": "one"}
    assert sorted(merged.contexts) == ["a", "b"]
    assert (merged.current_context, merged.current_context_file) == ("b", Path("/2/config"))
    assert merged.users["u"].field("token") == "/1/config: users[0].user.token"


def test_precedence_drops_empty_items_and_repeats() -> None:
    assert precedence("/a::/b:/a:", ":") == [Path("/a"), Path("/b")]


def test_kubeconfig_files_merge_with_paths_relative_to_their_own_file(tmp_path: Path) -> None:
    clusters = write(
        tmp_path / "clusters" / "config",
        config({"c": {"server": "https://c:6443", "certificate-authority": "ca.crt"}}, {}, {}),
    )
    users = write(
        tmp_path / "users" / "config",
        config(
            {"c": {"server": "https://ignored"}},
            {"me": {"tokenFile": "token"}},
            {"work": {"cluster": "c", "user": "me", "namespace": "team"}},
            current="work",
        ),
    )
    missing = tmp_path / "absent"
    env = {"KUBECONFIG": f"{missing}:{clusters}:{users}"}
    resolved = load_config(env=env)
    assert resolved.server == "https://c:6443"
    assert resolved.ca_file == tmp_path / "clusters" / "ca.crt"
    assert resolved.token_file == tmp_path / "users" / "token"
    assert resolved.namespace == "team"
    # An explicit --kubeconfig is used alone, as kubectl does.
    with pytest.raises(ConfigError, match="has no current-context"):
        load_config(clusters, env=env)


def test_merge_errors_name_the_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="none of the KUBECONFIG files exists"):
        load_config(env={"KUBECONFIG": str(tmp_path / "nope")})
    broken = write(tmp_path / "broken", {"clusters": [{"cluster": {"server": "https://x"}}]})
    with pytest.raises(ConfigError, match=r"broken: clusters\[0\].name: must be a non-empty string"):
        load_config(env={"KUBECONFIG": str(broken)})
    dangling = write(tmp_path / "dangling", config({}, {}, {"a": {"cluster": "gone"}}, current="a"))
    with pytest.raises(
        ConfigError, match=r"no cluster named 'gone' \(.*dangling: contexts\[0\].context.cluster"
    ):
        load_config(env={"KUBECONFIG": str(dangling)})
    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(ConfigError, match="has no current-context"):
        load_config(env={"KUBECONFIG": str(empty)})


def test_proxy_url_is_checked_where_it_is_written(tmp_path: Path) -> None:
    data = config(
        {"c": {"server": "https://c", "proxy-url": "socks5://127.0.0.1:1080"}}, {}, {"a": {"cluster": "c"}}
    )
    path = write(tmp_path / "kc", {**data, "current-context": "a"})
    with pytest.raises(
        ConfigError, match=r"kc: clusters\[0\].cluster.proxy-url: socks5 proxies are not supported"
    ):
        load_config(path)
    data["clusters"][0]["cluster"]["proxy-url"] = "http://127.0.0.1:3128"
    write(path, {**data, "current-context": "a"})
    assert load_config(path).proxy_url == "http://127.0.0.1:3128"


def test_auth_provider_is_refused_with_the_field() -> None:
    data = config(
        {"c": {"server": "https://c"}},
        {"u": {"auth-provider": {"name": "oidc"}}},
        {"a": {"cluster": "c", "user": "u"}},
        "a",
    )
    with pytest.raises(ConfigError, match=r"users\[0\].user.auth-provider: auth-provider plugins \('oidc'\)"):
        parse_kubeconfig(data, Path("/"))
