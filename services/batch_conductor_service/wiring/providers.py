"""Dishka providers, grouped by layer. The one container is built in wiring/startup.py."""

from collections.abc import AsyncIterator
from functools import partial

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from dishka import AsyncContainer, Provider, Scope, from_context, provide
from prometheus_client import CollectorRegistry
from quart import Quart
from quart_dishka import QuartDishka

from batch_conductor_service import SERVICE_NAME
from batch_conductor_service.api.phase_reports import PhaseReportService
from batch_conductor_service.consumer.health import ConsumerHealth, ConsumerPhase
from batch_conductor_service.consumer.loop import EventConsumer
from batch_conductor_service.consumer.pipeline import EventPipeline
from batch_conductor_service.consumer.translation import CONSUMED_TOPICS
from batch_conductor_service.dead_letter.producer import KafkaDlqProducer
from batch_conductor_service.dead_letter.resolution_sender import FailedResolutionDeadLetters
from batch_conductor_service.domain.step_graph import StepGraph
from batch_conductor_service.health import HealthReporters, PipelineConfigHealth, Serving
from batch_conductor_service.metrics import BcsMetrics
from batch_conductor_service.protocols import (
    BatchStateRepositoryProtocol,
    DlqProducerProtocol,
    EssayPlacementProtocol,
    PipelineResolutionServiceProtocol,
)
from batch_conductor_service.resolution_service import (
    PipelineResolutionService,
)
from batch_conductor_service.wiring.settings import Settings
from batch_conductor_service.wiring.store_providers import store_providers
from batch_conductor_service.wiring.tracing import Tracing


class CoreProvider(Provider):
    scope = Scope.APP

    settings = from_context(provides=Settings)
    graph = from_context(provides=StepGraph)
    registry = from_context(provides=CollectorRegistry)
    metrics = from_context(provides=BcsMetrics)
    tracing = from_context(provides=Tracing)
    serving = provide(Serving)


class ServiceProvider(Provider):
    scope = Scope.APP

    resolution = provide(PipelineResolutionService, provides=PipelineResolutionServiceProtocol)

    @provide
    def phase_reports(
        self, graph: StepGraph, repository: BatchStateRepositoryProtocol
    ) -> PhaseReportService:
        return PhaseReportService(graph, repository)


class ConsumerProvider(Provider):
    scope = Scope.APP

    @provide
    async def dead_letters(
        self, settings: Settings, metrics: BcsMetrics
    ) -> AsyncIterator[DlqProducerProtocol]:
        producer = KafkaDlqProducer(
            lambda: AIOKafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS),
            SERVICE_NAME,
            settings.KAFKA_DLQ_SEND_TIMEOUT_SECONDS,
            settings.DLQ_MAX_RECORD_BYTES,
        )
        yield producer
        await producer.close()

    @provide
    async def failed_resolutions(
        self, settings: Settings, dead_letters: DlqProducerProtocol, metrics: BcsMetrics
    ) -> AsyncIterator[FailedResolutionDeadLetters]:
        sender = FailedResolutionDeadLetters(
            dead_letters,
            metrics,
            per_minute=settings.RESOLUTION_DLQ_PER_MINUTE,
            timeout_seconds=settings.RESOLUTION_DLQ_TIMEOUT_SECONDS,
        )
        yield sender
        await sender.close()

    @provide
    def consumer_health(self, settings: Settings, metrics: BcsMetrics) -> ConsumerHealth:
        health = ConsumerHealth(
            enabled=settings.KAFKA_CONSUMER_ENABLED,
            stall_seconds=settings.CONSUMER_STALL_SECONDS,
            silence_seconds=settings.KAFKA_SILENCE_SECONDS,
        )
        metrics.track_consumer(
            lambda: (health.reported_phase().value, health.stalled_for()),
            [p.value for p in ConsumerPhase],
        )
        return health

    @provide
    def pipeline(
        self,
        settings: Settings,
        repository: BatchStateRepositoryProtocol,
        placement: EssayPlacementProtocol,
        dead_letters: DlqProducerProtocol,
        metrics: BcsMetrics,
        tracing: Tracing,
    ) -> EventPipeline:
        return EventPipeline(
            repository,
            placement,
            dead_letters,
            metrics,
            max_records=settings.KAFKA_MAX_POLL_RECORDS,
            max_attempts=settings.POISON_MAX_ATTEMPTS,
            max_clock_skew_seconds=settings.MAX_CLOCK_SKEW_SECONDS,
            tracer=tracing.tracer,
        )

    @provide
    def consumer(
        self,
        settings: Settings,
        pipeline: EventPipeline,
        health: ConsumerHealth,
        metrics: BcsMetrics,
    ) -> EventConsumer:
        session_ms = int(settings.KAFKA_SESSION_TIMEOUT_SECONDS * 1000)
        client = partial(
            AIOKafkaConsumer,
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
            group_id=settings.KAFKA_CONSUMER_GROUP_ID,
            # A new group starts from the first offset: results produced before BCS first
            # started still count.
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=session_ms // 3,
            # Up to 8 MiB per partition per fetch (aiokafka's default is 1 MiB): a backlog is
            # read in a few large fetches, not a round trip per thousand messages.
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_wait_ms=100,
        )
        return EventConsumer(
            client,
            CONSUMED_TOPICS,
            pipeline,
            health,
            metrics,
            backoff_initial_seconds=settings.KAFKA_RETRY_BACKOFF_INITIAL_SECONDS,
            backoff_max_seconds=settings.KAFKA_RETRY_BACKOFF_MAX_SECONDS,
            silence_seconds=settings.KAFKA_SILENCE_SECONDS,
        )


class HealthProvider(Provider):
    scope = Scope.APP

    @provide
    def reporters(
        self,
        graph: StepGraph,
        repository: BatchStateRepositoryProtocol,
        placement: EssayPlacementProtocol,
        consumer_health: ConsumerHealth,
    ) -> HealthReporters:
        return HealthReporters(PipelineConfigHealth(graph), repository, placement, consumer_health)


def default_providers(settings: Settings) -> list[Provider]:
    return [
        CoreProvider(),
        *store_providers(settings),
        ServiceProvider(),
        ConsumerProvider(),
        HealthProvider(),
    ]


def app_container(app: Quart) -> AsyncContainer:
    """The app's container, for tests that look inside a running app; the service's own code
    has everything injected."""
    extension: QuartDishka = app.extensions["QUART_DISHKA"]
    if extension.container is None:
        raise RuntimeError("the app was not built by create_app")
    return extension.container
