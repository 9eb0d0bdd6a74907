"""Composition root: what one Lambda container builds once and reuses (clients, pools, caches), wired together.

Nothing here decides anything: the handler (app.py) asks ``container()`` for the parts and hands each event to
its source (sources/).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import field
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.serialization.dataclass import DataclassSerializer
from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider
from botocore.config import Config

from stop_campaign.adapters.alarm_targets import AlarmTargets
from stop_campaign.adapters.credentials import CredentialStore
from stop_campaign.adapters.dead_letter import DeadLetterQueue
from stop_campaign.adapters.history import RequestHistory
from stop_campaign.adapters.kore_client import ClientSettings, KoreClient
from stop_campaign.adapters.producer_policy import ProducerPolicySource
from stop_campaign.adapters.results import ResultsPublisher
from stop_campaign.adapters.signing_key import ContinuationKey
from stop_campaign.adapters.stop_queue import StopQueue
from stop_campaign.domain.models import StopOutcome
from stop_campaign.domain.provenance import Trust
from stop_campaign.domain.readonly import readonly_dataclass
from stop_campaign.pacing.account_budgets import AccountBudgets
from stop_campaign.pacing.rate_ledger import RateLedger
from stop_campaign.service.processing import (
    MessageProcessor,
    Telemetry,
    disabling,
    handing_over,
    observed,
    observed_summary,
    remember_stoppable,
    republishing,
    sending_dead_letters,
    starting,
    stop_and_observe,
)
from stop_campaign.service.stopper import CampaignStopper
from stop_campaign.settings import IDEMPOTENCY_TTL_ATTRIBUTE, Settings, get_settings

if TYPE_CHECKING:  # built (and imported) at their first use: see ``holds``
    from stop_campaign.adapters.alarm_states import AlarmStates
    from stop_campaign.adapters.holds import HoldStore
    from stop_campaign.service.holds import HoldChecker

# A history write is one attempt of at most 0.5 s connect + 1 s read: one stuck on a bad connection ends soon after
# the invocation stops waiting for it (processing.HISTORY_RESERVE_SECONDS).
HISTORY_AWS_CONFIG = Config(connect_timeout=0.5, read_timeout=1.0, retries={"mode": "standard", "max_attempts": 1})
NORMAL_HORIZON_SECONDS = 1.0  # how far ahead a routine call may hold a grant (pacing.account_budgets.AccountBudgets)
metrics = Metrics()
telemetry = Telemetry(metrics)


class AwsClients:
    """The container's boto3 clients, from one session, each built at most once. DynamoDB, Secrets Manager and
    SNS serve every invocation (built with the container); SQS (dead letters, hand-overs) and SSM (the alarm map)
    only some: those (20-25 ms each to build, most of it loading the service's model) are factories, built at
    their first call, or by ``build_later`` after an answer. One lock for all: a boto3 session is not safe to
    build clients from two threads at once, and record threads may ask together."""

    def __init__(self, session: boto3.session.Session, config: Config) -> None:
        self._session = session
        self._config = config
        self._building = threading.Lock()
        self._sqs: Any = None
        self._ssm_parameters: SSMProvider | None = None
        self._history: Any = None
        self._cloudwatch: Any = None

    def _client(self, service: str) -> Any:
        return self._session.client(service, config=self._config)

    @cached_property
    def dynamodb(self) -> Any:
        with self._building:
            return self._client("dynamodb")

    @cached_property
    def secretsmanager(self) -> Any:
        with self._building:
            return self._client("secretsmanager")

    @cached_property
    def sns(self) -> Any:
        with self._building:
            return self._client("sns")

    def sqs(self) -> Any:
        """The SQS client (a factory: the queues call it at their first send)."""
        if self._sqs is None:
            with self._building:
                if self._sqs is None:
                    self._sqs = self._client("sqs")
        return self._sqs

    def history_dynamodb(self) -> Any:
        """The request history's DynamoDB client (a factory: built at the first write, after a request's stops):
        short timeouts and one retry, so that a slow table cannot hold an invocation past what it has left."""
        if self._history is None:
            with self._building:
                if self._history is None:
                    self._history = self._session.client("dynamodb", config=self._config.merge(HISTORY_AWS_CONFIG))
        return self._history

    def cloudwatch(self) -> Any:
        """The CloudWatch client of the hold check (a factory: only hold checks and alarms leaving ALARM ask)."""
        if self._cloudwatch is None:
            with self._building:
                if self._cloudwatch is None:
                    self._cloudwatch = self._client("cloudwatch")
        return self._cloudwatch

    def ssm_parameters(self) -> SSMProvider:
        """The SSM provider of the alarm map and the producer policy (a factory: built at their first read)."""
        if self._ssm_parameters is None:
            with self._building:
                if self._ssm_parameters is None:
                    self._ssm_parameters = SSMProvider(boto3_client=self._client("ssm"))
        return self._ssm_parameters

    def build_later(self) -> None:
        """Build the clients only some invocations use, off the path of an answer: a kill switch's first alarm in
        this container then finds its SSM client ready."""
        self.ssm_parameters()
        self.sqs()


@readonly_dataclass
class Container:
    """What one Lambda container builds once and reuses: clients, pools, caches."""

    processor: MessageProcessor
    idempotency: IdempotencyConfig
    record_workers: ThreadPoolExecutor
    max_receive_count: int
    budgets: AccountBudgets
    clients: AwsClients
    trust: Trust = field(default_factory=Trust)  # what tells the events queue and the function's own messages apart
    hold_checker: Callable[[], HoldChecker] | None = None  # its factory; None: HOLDS_TABLE is not set, no hold


def aws_config(settings: Settings) -> Config:
    """Every record thread and every fan-out thread may hold an AWS connection at once. Timeouts and attempts
    sized to the margin the deadline keeps after the last API call, not botocore's 60 s defaults."""
    return Config(
        max_pool_connections=2 * settings.stop_concurrency,
        connect_timeout=settings.aws_connect_timeout_seconds,
        read_timeout=settings.aws_read_timeout_seconds,
        retries={"mode": "standard", "max_attempts": settings.aws_max_attempts},
    )


def kore_client(settings: Settings) -> KoreClient:
    return KoreClient(
        ClientSettings(
            base_url=settings.kore_base_url,
            connect_timeout=settings.http_connect_timeout_seconds,
            read_timeout=settings.http_read_timeout_seconds,
            max_retries=settings.http_max_retries,
            pool_size=2 * settings.stop_concurrency,  # records and their fan-out both hold connections
        )
    )


def account_budgets(settings: Settings, clients: AwsClients) -> AccountBudgets:
    pacing = settings.kore_rate_limit.paced()
    ledger = RateLedger(settings.idempotency_table_name, clients.dynamodb, pacing,
                        ttl_attribute=IDEMPOTENCY_TTL_ATTRIBUTE)
    return AccountBudgets(pacing, ledger, normal_horizon=NORMAL_HORIZON_SECONDS)


def idempotent(
    settings: Settings, clients: AwsClients, idempotency: IdempotencyConfig,
) -> Callable[..., Callable[..., Any]]:
    """Makes a function idempotent on its keyword argument ``keyword``, records keyed with ``prefix``."""

    def once(function: Callable[..., Any], keyword: str, prefix: str, **options: Any) -> Callable[..., Any]:
        # One store per idempotent function: a shared store's key prefix would race between threads.
        store = DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table_name, expiry_attr=IDEMPOTENCY_TTL_ATTRIBUTE,
            boto3_client=clients.dynamodb,
        )
        return idempotent_function(
            function, data_keyword_argument=keyword, persistence_store=store, config=idempotency, key_prefix=prefix,
            **options,
        )

    return once


def hold_parts(
    settings: Settings, clients: AwsClients,
) -> tuple[Callable[[], HoldStore] | None, Callable[[], AlarmStates]]:
    """The hold store (None without HOLDS_TABLE) and CloudWatch's alarm states, as factories: made, and their modules
    imported, at their first use (an alarm with ``hold: true``, one leaving ALARM, a hold check), so a cold start
    loads none of the holds. The hold writes share the history's short-timeout client: they come at the end of the
    report step too."""

    @cache
    def store() -> HoldStore:
        from stop_campaign.adapters.holds import HoldStore

        return HoldStore(settings.holds_table, clients.history_dynamodb)

    @cache
    def alarm_states() -> AlarmStates:
        from stop_campaign.adapters.alarm_states import AlarmStates

        return AlarmStates(clients.cloudwatch)

    return (store if settings.holds_table else None), alarm_states


def hold_checker(
    settings: Settings, holds: Callable[[], HoldStore], alarm_states: Callable[[], AlarmStates],
    processor: MessageProcessor, stopper: CampaignStopper,
) -> Callable[[], HoldChecker]:
    """The hold check's service, made at the first hold check."""

    @cache
    def checker() -> HoldChecker:
        from stop_campaign.service.holds import HoldChecker

        return HoldChecker(store=holds(), alarm_states=alarm_states(), processor=processor, stopper=stopper,
                           telemetry=telemetry, interval_seconds=settings.hold_check_seconds)

    return checker


@cache
def container() -> Container:
    settings = get_settings()  # raises ConfigurationError before any call when the environment is wrong
    clients = AwsClients(boto3.session.Session(), aws_config(settings))
    idempotency = IdempotencyConfig(expires_after_seconds=settings.idempotency_ttl_seconds)
    once = idempotent(settings, clients, idempotency)
    budgets = account_budgets(settings, clients)
    stopper = CampaignStopper(
        kore_client(settings),
        CredentialStore(
            settings.credentials_secret_id,
            settings.credentials_cache_seconds,
            SecretsProvider(boto3_client=clients.secretsmanager),
        ),
        settings.jwt_ttl_seconds,
        budgets,
    )
    publisher = ResultsPublisher(settings.results_topic_arn, clients.sns)
    history = (RequestHistory(settings.request_history_table, clients.history_dynamodb,
                              settings.request_history_days) if settings.request_history_table else None)
    signing_key = ContinuationKey(settings.idempotency_table_name, clients.dynamodb)
    holds, alarm_states = hold_parts(settings, clients)
    processor = MessageProcessor(
        stopper=stopper,
        stop_once=once(stop_and_observe(stopper, telemetry), "key", "stop",
                       output_serializer=DataclassSerializer(StopOutcome)),
        publish_once=once(observed(publisher.publish, telemetry), "identity", "result"),
        publish_summary_once=once(observed_summary(publisher.publish_summary, telemetry), "identity", "summary"),
        resolve_once=once(remember_stoppable(stopper), "key", "targets"),
        hand_over_once=once(handing_over(StopQueue(settings.stop_queue_url, clients.sqs, signing_key.get),
                                         budgets), "key", "handover"),
        dead_letter_once=once(sending_dead_letters(DeadLetterQueue(settings.dead_letter_queue_url, clients.sqs)),
                              "key", "deadletter"),
        alarm_targets=AlarmTargets(
            settings.alarm_targets_parameter,
            settings.alarm_targets_cache_seconds,
            clients.ssm_parameters,
        ),
        executor=ThreadPoolExecutor(settings.stop_concurrency, thread_name_prefix="stop"),
        telemetry=telemetry,
        max_wait_seconds=settings.max_wait_seconds,
        producer_policy=ProducerPolicySource(
            settings.producer_policy_parameter, settings.producer_policy_cache_seconds, clients.ssm_parameters,
        ),
        signing_key=signing_key.get,
        republish_once=once(republishing(publisher.republish), "identity", "republish"),
        max_request_age_seconds=settings.max_request_age_seconds,
        disable_once=once(disabling(stopper, telemetry), "key", "schedule"),
        history=history,
        start_once=once(starting(stopper, telemetry), "key", "start",
                        output_serializer=DataclassSerializer(StopOutcome)),
        holds=holds,
        alarm_states=alarm_states,
    )
    return Container(
        processor=processor,
        idempotency=idempotency,
        record_workers=ThreadPoolExecutor(settings.stop_concurrency, thread_name_prefix="record"),
        max_receive_count=settings.max_receive_count,
        budgets=budgets,
        clients=clients,
        trust=Trust(settings.stop_events_queue_arn, settings.function_role_id),
        hold_checker=hold_checker(settings, holds, alarm_states, processor, stopper) if holds else None,
    )
