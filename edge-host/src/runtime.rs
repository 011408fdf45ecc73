//! The wasmtime side: one engine and pre-instantiated component, a fresh store
//! per instance, WASI (p2 + p3), wasi:http, Spin variables and the outbound allowlist.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use wasmtime::component::{Accessor, Component, GuestTaskId, HasData, Linker, ResourceTable};
use wasmtime::error::Context as _;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreContextMut,
};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, Proxy, ProxyHandler, ShouldAccept, WorkerExpiration, WorkerState,
    WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::kv::{KeyValue, KvHost, KvView};
use crate::manifest::{App, OutboundHost};

pub(crate) mod bindings {
    // The single place host bindings are generated, from the same WIT the edge is built against.
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "imgate:edge/spin-imports",
        with: {
            "spin:key-value/key-value.store": crate::kv::OpenStore,
        },
        // Making a stream can fail in the host; that traps rather than lying.
        imports: {
            "spin:key-value/key-value.[method]store.get-keys": trappable,
        },
    });
}
use bindings::spin::variables::variables as spin_variables;

/// Instance slots kept ready. Instances are not always shared by concurrent
/// requests, so a request may need a slot of its own.
const POOLED_INSTANCES: u32 = 128;
/// Requests the host lets in at once (one instance slot each at worst); more
/// wait for one to finish.
pub const MAX_IN_FLIGHT: usize = POOLED_INSTANCES as usize;
/// Largest linear memory one instance may grow: the edge needs a few MiB.
const MAX_MEMORY_BYTES: usize = 256 << 20;

/// Limits on one edge instance. The component is small and stateless; these only
/// stop a bug from taking the host down.
pub struct Limits {
    /// How long one request may run, origin render included.
    pub request_timeout: Duration,
    /// How long an idle instance is kept for reuse.
    pub idle_timeout: Duration,
    /// How many requests one instance serves before it is replaced.
    pub max_reuse: usize,
    /// How many requests one instance serves at once.
    pub max_concurrent: usize,
    /// Outbound HTTP: time to connect, and to the first byte of the answer.
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
}

/// Everything one store holds.
pub struct Host {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outbound: Outbound,
    variables: Arc<App>,
    kv: Arc<KeyValue>,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// Spin's `allowed_outbound_hosts`: a request anywhere else is denied before any
/// connection is made.
struct Outbound {
    allowed: Arc<Vec<OutboundHost>>,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<wasmtime_wasi_http::WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        if !self.allowed.iter().any(|host| host.allows(request.uri())) {
            tracing::warn!(uri = %redact(request.uri()), "outbound request denied: not in allowed_outbound_hosts");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        let mut options = options.unwrap_or_default();
        options.connect_timeout.get_or_insert(self.connect_timeout);
        options
            .first_byte_timeout
            .get_or_insert(self.first_byte_timeout);
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// A URI for logs: presigned store URLs carry credentials in the query.
fn redact(uri: &http::Uri) -> String {
    format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("?"),
        uri.authority().map(|a| a.as_str()).unwrap_or("?"),
        uri.path()
    )
}

/// `HasData` for the Spin variables interface: it only reads the resolved variables.
struct Variables;

impl HasData for Variables {
    type Data<'a> = &'a App;
}

impl spin_variables::Host for &App {}

impl<U> spin_variables::HostWithStore<U> for Variables {
    async fn get(store: &Accessor<U, Self>, name: String) -> Result<String, spin_variables::Error> {
        store.with(|mut view| {
            let app: &App = view.get();
            app.variables
                .get(&name)
                .cloned()
                .ok_or(spin_variables::Error::Undefined(format!(
                    "no variable {name:?} in component {:?}",
                    app.component_name
                )))
        })
    }
}

/// The compiled edge, ready to instantiate per request.
pub struct Edge {
    app: Arc<App>,
    kv: Arc<KeyValue>,
    /// The edge is a WASIp3 component (spin-sdk 7); a p2 one is refused at load.
    pre: ServicePre<Host>,
    limits: Arc<Limits>,
    next_instance: AtomicU64,
    stopping: Arc<AtomicBool>,
}

impl Edge {
    /// Loads the component. Key-value stores live in memory, or as files in
    /// `kv_dir` when given.
    pub fn new(
        app: App,
        limits: Limits,
        kv_dir: Option<&std::path::Path>,
    ) -> wasmtime::Result<Self> {
        let kv = KeyValue::open(&app.key_value_stores, kv_dir)
            .map_err(|e| wasmtime::format_err!("key-value store: {e:#}"))?;
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.wasm_component_model_async(true);
        // Instances come from preallocated slots, as in Spin: instantiation is a
        // few page remaps, not mmap calls. Bounded to what one host serves.
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOLED_INSTANCES)
            .total_core_instances(POOLED_INSTANCES * 4)
            .total_memories(POOLED_INSTANCES * 2)
            .total_tables(POOLED_INSTANCES * 2)
            .total_stacks(POOLED_INSTANCES * 2)
            .max_memory_size(MAX_MEMORY_BYTES);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        let started = Instant::now();
        let component = Component::from_file(&engine, &app.wasm).with_context(|| {
            format!(
                "cannot load the edge component {} (build it with scripts/build-edge)",
                app.wasm.display()
            )
        })?;
        tracing::info!(wasm = %app.wasm.display(), elapsed_ms = started.elapsed().as_millis() as u64, "compiled edge component");

        let mut linker = Linker::<Host>::new(&engine);
        // The component speaks WASIp3 HTTP; its libc still imports a few WASIp2
        // interfaces (filesystem, cli), so both are linked.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi::p3::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
        spin_variables::add_to_linker::<_, Variables>(&mut linker, |host: &mut Host| {
            &*host.variables
        })?;
        bindings::spin::key_value::key_value::add_to_linker::<_, KvHost>(
            &mut linker,
            |host: &mut Host| KvView {
                table: &mut host.table,
                kv: &host.kv,
            },
        )?;

        let pre = linker.instantiate_pre(&component)?;
        let pre = ServicePre::new(pre).context(
            "the component does not export wasi:http/handler@0.3.0 (is it a spin-sdk 7 component?)",
        )?;
        Ok(Self {
            app: Arc::new(app),
            kv: Arc::new(kv),
            pre,
            limits: Arc::new(limits),
            next_instance: AtomicU64::new(0),
            stopping: Arc::default(),
        })
    }

    /// Marks the host as shutting down: instances dropped from now on were
    /// cancelled on purpose, not failed.
    pub fn stopping(&self) -> Arc<AtomicBool> {
        self.stopping.clone()
    }

    pub fn into_handler(self) -> ProxyHandler<Self> {
        ProxyHandler::new(self)
    }

    /// The names of the component's imports and exports (interfaces), for checks.
    pub fn interfaces(&self) -> (Vec<String>, Vec<String>) {
        let engine = self.pre.engine();
        let ty = self.pre.instance_pre().component().component_type();
        (
            ty.imports(engine)
                .map(|(name, _)| name.to_string())
                .collect(),
            ty.exports(engine)
                .map(|(name, _)| name.to_string())
                .collect(),
        )
    }

    fn new_store(&self) -> wasmtime::Result<Store<Host>> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stderr().inherit_stdout();
        for mount in &self.app.mounts {
            wasi.preopened_dir(&mount.host, &mount.guest, FsPerms::ReadOnly)
                .with_context(|| {
                    format!("cannot mount {} as {}", mount.host.display(), mount.guest)
                })?;
        }
        let host = Host {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            outbound: Outbound {
                allowed: Arc::new(self.app.outbound.clone()),
                connect_timeout: self.limits.connect_timeout,
                first_byte_timeout: self.limits.first_byte_timeout,
            },
            variables: self.app.clone(),
            kv: self.kv.clone(),
        };
        Ok(Store::new(self.pre.engine(), host))
    }
}

impl HandlerState for Edge {
    type StoreData = Host;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<Host, Expiration, Worker>> {
        let mut store = self.new_store()?;
        let proxy = Proxy::P3(self.pre.instantiate_async(&mut store).await?);
        Ok(Instance {
            store,
            proxy,
            view: WasiHttpView::http,
            expiration: Expiration {
                idle: self.limits.idle_timeout,
                busy: self.limits.request_timeout,
                sleep: Box::pin(tokio::time::sleep(Duration::MAX)),
            },
            state: Worker {
                id: self.next_instance.fetch_add(1, Ordering::Relaxed),
                limits: self.limits.clone(),
                stopping: self.stopping.clone(),
            },
        })
    }
}

/// Retires an instance that sat idle, or whose requests ran past the timeout.
pub struct Expiration {
    idle: Duration,
    busy: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl WorkerExpiration for Expiration {
    fn poll(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let me = self.get_mut();
        let timeout = match status {
            WorkerStatus::Idle => me.idle,
            WorkerStatus::Requests | WorkerStatus::PostReturn => me.busy,
        };
        let Some(deadline) = start.checked_add(timeout) else {
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        if me.sleep.deadline() != deadline {
            me.sleep.as_mut().reset(deadline);
        }
        me.sleep.as_mut().poll(cx)
    }
}

pub struct Worker {
    id: u64,
    limits: Arc<Limits>,
    stopping: Arc<AtomicBool>,
}

impl WorkerState for Worker {
    type StoreData = Host;
    type RequestData = u64;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.limits.max_reuse {
            ShouldAccept::Never
        } else if concurrent >= self.limits.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, Host>,
        request_id: u64,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + 'static + Send + Sync>> {
        tracing::debug!(instance = self.id, request_id, "instance handles request");
        // When this completes the request is cancelled.
        Box::pin(tokio::time::sleep(self.limits.request_timeout))
    }

    fn drop(&self, store: Store<Host>, result: wasmtime::Result<()>) {
        match result {
            Err(_) if self.stopping.load(Ordering::Relaxed) => {
                tracing::debug!(instance = self.id, "edge instance cancelled by shutdown");
            }
            Err(error) => tracing::error!(instance = self.id, "edge instance failed: {error:?}"),
            Ok(()) => {}
        }
        drop(store);
    }
}
