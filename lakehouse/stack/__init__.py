"""The embedded local stack: `lakehouse up | down | status` without Docker."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lakehouse.settings import Settings
from lakehouse.stack.process import ProcessTable, StackError, port_in_use, tcp_answers
from lakehouse.stack.services import SERVICE_TYPES, S3Emulator, Service, s3_service

__all__ = ["LocalStack", "ServiceStatus", "StackError"]

Log = Callable[[str], None]


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    title: str
    address: str
    state: str  # running | stopped | dead | external
    pid: int | None
    health: str  # "ok" or the reason it is not
    kind: str = ""  # the S3 endpoint: moto | localstack | external

    @property
    def healthy(self) -> bool:
        return self.state in ("running", "external") and self.health == "ok"


class LocalStack:
    """Starts, checks and stops the project's local services, recording what it started."""

    def __init__(self, settings: Settings, services: Iterable[str] | None = None) -> None:
        self.settings = settings
        self.processes = ProcessTable(settings.state_path)
        wanted = set(services) if services is not None else None
        all_services = [self._as_running(make(settings)) for make in SERVICE_TYPES]
        unknown = (wanted or set()) - {s.name for s in all_services}
        if unknown:
            names = ", ".join(s.name for s in all_services)
            raise StackError(f"unknown service(s) {', '.join(sorted(unknown))}; known: {names}")
        self.services = [s for s in all_services if wanted is None or s.name in wanted]

    def _as_running(self, svc: Service) -> Service:
        """The emulator a live process of ours was started as (`up --emulator` may differ from the setting):
        status reports it and `up` keeps it, until `down`."""
        if isinstance(svc, S3Emulator) and svc.managed:
            record = self.processes.get(svc.name)
            if record is not None and record.is_alive() and S3Emulator.kind_of(record.argv) != svc.kind:
                return s3_service(self.settings, S3Emulator.kind_of(record.argv))
        return svc

    def service(self, name: str) -> Service:
        for svc in self.services:
            if svc.name == name:
                return svc
        raise StackError(f"service {name!r} is not part of this stack")

    # ------------------------------------------------------------------ up
    def up(self, log: Log = print) -> list[ServiceStatus]:
        """Start what is not running (restarting dead services), wait until each answers."""
        started: set[str] = set()
        for svc in self.services:
            if not svc.managed:
                self._use_external(svc, log)
                continue
            if isinstance(svc, S3Emulator) and svc.kind != self.settings.emulator:
                log(f"{svc.name}: {svc.title} is running; keeping it (`lakehouse down` first to switch emulators)")
            record = self.processes.get(svc.name)
            must_reset = any(dep in started for dep in svc.reset_when_restarted)
            if record is not None and record.is_alive():
                needs_restart = must_reset or any(dep in started for dep in svc.depends_on)
                if not needs_restart and self._wait_healthy(svc, timeout=svc.start_timeout) is None:
                    svc.after_start()  # idempotent: repairs e.g. a deleted bucket
                    log(f"{svc.name}: already running at {svc.address}")
                    continue
                log(f"{svc.name}: restarting (dependency restarted or not answering)")
                self.processes.stop(svc.name, svc.stop_signal)
            elif record is not None:
                log(f"{svc.name}: process {record.pid} died; restarting")
                self.processes.forget(svc.name)
            if must_reset:
                log(f"{svc.name}: resetting its state ({', '.join(svc.reset_when_restarted)} started fresh)")
                svc.reset()
            self._start(svc, log)
            started.add(svc.name)
        return self.status()

    def _use_external(self, svc: Service, log: Log) -> None:
        """An endpoint the stack does not run: it must answer; then its resources are made sure of."""
        reason = self._wait_healthy(svc, timeout=svc.start_timeout)
        if reason is not None:
            raise StackError(
                f"{svc.title} at {svc.address} does not answer ({reason}). Start it, or unset "
                "LAKEHOUSE_S3_ENDPOINT_URL to let `lakehouse up` run its own emulator."
            )
        svc.after_start()
        log(f"{svc.name}: using the external endpoint {svc.address} (LAKEHOUSE_S3_ENDPOINT_URL); not started here")

    def _start(self, svc: Service, log: Log) -> None:
        host = self.settings.host
        if svc.port is not None and port_in_use(host, svc.port):
            hint = (
                f" If it is an S3 emulator you run yourself (LocalStack, moto), use it instead: "
                f"LAKEHOUSE_S3_ENDPOINT_URL=http://{host}:{svc.port}."
                if isinstance(svc, S3Emulator)
                else ""
            )
            raise StackError(
                f"{svc.title} cannot start: {host}:{svc.port} is already in use by another process. "
                f"Stop that process or choose another port with {svc.port_env_var}=<port>.{hint}"
            )
        svc.prepare(log)
        record = self.processes.start(svc.name, svc.argv(), svc.env(), user=svc.run_as())
        deadline = time.monotonic() + svc.start_timeout
        reason: str | None = "not checked yet"
        while time.monotonic() < deadline:
            if not record.is_alive():
                self.processes.forget(svc.name)
                raise StackError(
                    f"{svc.title} exited during start-up. Last log lines "
                    f"({self.processes.log_path(svc.name)}):\n{self.processes.tail(svc.name)}"
                )
            reason = svc.check()
            if reason is None:
                break
            time.sleep(0.2)
        else:
            self.processes.stop(svc.name, svc.stop_signal)
            raise StackError(
                f"{svc.title} did not answer within {svc.start_timeout:.0f} s ({reason}). "
                f"Log: {self.processes.log_path(svc.name)}"
            )
        svc.after_start()
        log(f"{svc.name}: started at {svc.address} (pid {record.pid})")

    def _wait_healthy(self, svc: Service, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while True:
            reason = svc.check()
            if reason is None or time.monotonic() >= deadline:
                return reason
            time.sleep(0.2)

    def restart(self, names: Iterable[str], log: Log = print) -> list[ServiceStatus]:
        """Restart the named services on their own, plus those that must follow them (`depends_on`,
        `reset_when_restarted`, as in `up`); services not running stay as they are."""
        wanted = set(names)
        for name in wanted:
            self.service(name)  # unknown names fail before anything stops
        for svc in reversed(self.services):
            if svc.name in wanted and self.processes.stop(svc.name, svc.stop_signal):
                log(f"{svc.name}: stopped")
        running = {s.name for s in self.services if (r := self.processes.get(s.name)) is not None and r.is_alive()}
        return LocalStack(self.settings, running | wanted).up(log)

    # ------------------------------------------------------------------ down
    def down(self, purge: bool = False, log: Log = print) -> None:
        """Stop exactly the processes this stack started (reverse order); `purge` deletes state."""
        for svc in reversed(self.services):
            if self.processes.stop(svc.name, svc.stop_signal):
                log(f"{svc.name}: stopped")
            if purge:
                svc.purge()  # while the services it depends on still run
        if purge:
            shutil.rmtree(self.settings.state_path, ignore_errors=True)
            log(f"state deleted: {self.settings.state_path}")

    # ------------------------------------------------------------------ status
    def status(self) -> list[ServiceStatus]:
        result = []
        for svc in self.services:
            if not svc.managed:
                reason = svc.check() or svc.health_detail()
                result.append(
                    ServiceStatus(svc.name, svc.title, svc.address, "external", None, reason or "ok", _kind(svc))
                )
                continue
            record = self.processes.get(svc.name)
            if record is not None and record.is_alive():
                state, pid = "running", record.pid
            elif record is not None:
                state, pid = "dead", record.pid
            else:
                state, pid = "stopped", None
            reason = (svc.check() or svc.health_detail()) if state == "running" else None
            answers = svc.port is not None and tcp_answers(self.settings.host, svc.port)
            if state == "stopped" and answers and svc.check() is None:
                state, reason = "external", None  # answered, but not started by us
            if state == "dead":
                health = f"process {pid} exited; run `lakehouse up` to restart it"
            elif state == "stopped":
                health = "not running"
            else:
                health = reason or "ok"
            result.append(ServiceStatus(svc.name, svc.title, svc.address, state, pid, health, _kind(svc)))
        return result


def _kind(svc: Service) -> str:
    return svc.kind if isinstance(svc, S3Emulator) else ""
