//! One probe check, as Kubernetes' kubelet makes it: `exec` runs a command
//! in the container (exit code 0 passes), `httpGet` sends a GET to the pod
//! (status 200-399 passes), `tcpSocket` opens a connection (connecting
//! passes). Every check is bounded by the probe's timeout.
//!
//! The agent runs on the host, where the pod's IP on the agent's Docker
//! bridge is reachable, so network checks go straight to the pod's IP
//! (or the probe's `host`). HTTP is a single HTTP/1.1 request on a TCP
//! connection: only the status line of the answer matters. `scheme: HTTPS`
//! makes the same request over TLS without verifying the server's
//! certificate, as the kubelet does: a probe asks whether the server
//! answers, not who it is.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bosun_proto::api::{int_or_string, Container, HttpGetAction, IntOrString, Probe};
use futures::StreamExt;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::state::Outcome;
use crate::runtime::{ContainerRuntime, ExecOutput, RuntimeError};

/// Bytes of a failing command's output kept for the message.
const OUTPUT_KEPT: usize = 1024;
/// Most bytes read looking for the end of an HTTP status line.
const STATUS_LINE_MAX: usize = 4096;

/// Where a container's checks go.
#[derive(Clone, Debug, Default)]
pub struct Target {
    /// The runtime's id of the container, for `exec`.
    pub container_id: String,
    /// The pod's IP, for network checks without a `host`; `None` when the
    /// sandbox has none.
    pub pod_ip: Option<String>,
    /// The container's named ports, for `port: http`.
    pub ports: HashMap<String, i32>,
}

impl Target {
    pub fn new(container_id: &str, pod_ip: Option<String>, container: &Container) -> Target {
        Target {
            container_id: container_id.to_string(),
            pod_ip,
            ports: container
                .ports
                .iter()
                .filter(|p| !p.name.is_empty())
                .map(|p| (p.name.clone(), p.container_port))
                .collect(),
        }
    }

    /// The host a network check connects to.
    fn host(&self, requested: &str) -> Result<String, String> {
        if !requested.is_empty() {
            return Ok(requested.to_string());
        }
        self.pod_ip
            .clone()
            .ok_or_else(|| "the pod has no IP address".to_string())
    }

    /// A port given as a number or as the name of a container port.
    fn port(&self, port: Option<&IntOrString>) -> Result<u16, String> {
        let number = match port.and_then(|p| p.value.as_ref()) {
            Some(int_or_string::Value::IntValue(n)) => *n,
            Some(int_or_string::Value::StrValue(name)) => *self
                .ports
                .get(name)
                .ok_or_else(|| format!("the container has no port named {name:?}"))?,
            None => return Err("the probe names no port".to_string()),
        };
        u16::try_from(number)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("port {number} is out of range"))
    }
}

/// Makes one check of `probe` against `target`, within `timeout`.
pub async fn check<R: ContainerRuntime>(runtime: &R, probe: &Probe, target: &Target, timeout: Duration) -> Outcome {
    if let Some(exec) = &probe.exec {
        return command(runtime, &target.container_id, &exec.command, timeout).await;
    }
    if let Some(http) = &probe.http_get {
        return http_get(http, target, timeout).await;
    }
    if let Some(tcp) = &probe.tcp_socket {
        let address = target
            .host(&tcp.host)
            .and_then(|host| Ok((host, target.port(tcp.port.as_ref())?)));
        let (host, port) = match address {
            Ok(address) => address,
            Err(message) => return Outcome::Failure(message),
        };
        return match tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), port))).await {
            Ok(Ok(_)) => Outcome::Success,
            Ok(Err(e)) => Outcome::Failure(format!("dial tcp {host}:{port}: {e}")),
            Err(_) => Outcome::Failure(format!("dial tcp {host}:{port}: timed out after {timeout:?}")),
        };
    }
    Outcome::Failure("the probe has no exec, httpGet or tcpSocket".to_string())
}

/// `exec`: runs `argv` in the container; exit code 0 passes.
async fn command<R: ContainerRuntime>(runtime: &R, id: &str, argv: &[String], timeout: Duration) -> Outcome {
    let run = async {
        let mut session = runtime.exec(id, argv.to_vec(), false, false).await?;
        let mut output = Vec::new();
        while let Some(chunk) = session.output.next().await {
            let (ExecOutput::Stdout(bytes) | ExecOutput::Stderr(bytes)) = chunk?;
            let room = OUTPUT_KEPT.saturating_sub(output.len());
            output.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        let code = runtime.exec_exit_code(&session.id).await?;
        Ok::<_, RuntimeError>((code, output))
    };
    match tokio::time::timeout(timeout, run).await {
        Err(_) => Outcome::Failure(format!("command {argv:?} timed out after {timeout:?}")),
        Ok(Err(RuntimeError::Unreachable(message))) => Outcome::Unknown(message),
        Ok(Err(e)) => Outcome::Failure(format!("command {argv:?} could not run: {e}")),
        Ok(Ok((Some(0), _))) => Outcome::Success,
        Ok(Ok((code, output))) => {
            let output = String::from_utf8_lossy(&output).trim().to_string();
            let code = code.map_or_else(|| "unknown".to_string(), |c| c.to_string());
            Outcome::Failure(format!("command {argv:?} exited with {code}: {output}"))
        }
    }
}

/// `httpGet`: one GET; a status from 200 to 399 passes.
async fn http_get(action: &HttpGetAction, target: &Target, timeout: Duration) -> Outcome {
    let address = target
        .host(&action.host)
        .and_then(|host| Ok((host, target.port(action.port.as_ref())?)));
    let (host, port) = match address {
        Ok(address) => address,
        Err(message) => return Outcome::Failure(message),
    };
    let request = match request(action, &host, port) {
        Ok(request) => request,
        Err(message) => return Outcome::Failure(message),
    };
    let https = action.scheme.eq_ignore_ascii_case("HTTPS");
    let scheme = if https { "https" } else { "http" };
    let url = format!("{scheme}://{}{}", authority(&host, port), path(action));
    let exchange = async {
        let mut stream = TcpStream::connect((host.as_str(), port)).await?;
        if !https {
            stream.write_all(request.as_bytes()).await?;
            return read_status(&mut stream).await;
        }
        let name = ServerName::try_from(host.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("host {host:?}: {e}")))?;
        let connector = tls().map_err(std::io::Error::other)?;
        let mut tls = connector.connect(name, stream).await?;
        tls.write_all(request.as_bytes()).await?;
        read_status(&mut tls).await
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Outcome::Failure(format!("GET {url}: timed out after {timeout:?}")),
        Ok(Err(e)) => Outcome::Failure(format!("GET {url}: {e}")),
        Ok(Ok(status)) if (200..=399).contains(&status) => Outcome::Success,
        Ok(Ok(status)) => Outcome::Failure(format!("GET {url}: HTTP probe failed with status code {status}")),
    }
}

/// The TLS client of HTTPS probes: any certificate is accepted, as by the
/// kubelet.
fn tls() -> Result<TlsConnector, String> {
    static CONNECTOR: OnceLock<Result<TlsConnector, String>> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("no TLS client: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            Ok(TlsConnector::from(Arc::new(config)))
        })
        .clone()
}

/// Accepts the server's certificate whatever it is, but still checks the
/// handshake's signatures (so the connection is a real TLS one).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn path(action: &HttpGetAction) -> String {
    match action.path.as_str() {
        "" => "/".to_string(),
        p if p.starts_with('/') => p.to_string(),
        p => format!("/{p}"),
    }
}

/// `host:port`, with brackets around an IPv6 address.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The request's bytes: the probe's headers replace the defaults of the
/// same name (as in Kubernetes, a probe may set its own `Host`).
fn request(action: &HttpGetAction, host: &str, port: u16) -> Result<String, String> {
    let mut headers: Vec<(String, String)> = vec![
        ("Host".into(), authority(host, port)),
        ("User-Agent".into(), format!("bosun-probe/{}", crate::VERSION)),
        ("Accept".into(), "*/*".into()),
    ];
    for header in &action.http_headers {
        let text = format!("{}{}", header.name, header.value);
        if header.name.is_empty() || text.contains(['\r', '\n']) || header.name.contains(':') {
            return Err(format!("invalid HTTP header {:?}", header.name));
        }
        headers.retain(|(name, _)| !name.eq_ignore_ascii_case(&header.name));
        headers.push((header.name.clone(), header.value.clone()));
    }
    let path = path(action);
    if path.contains(['\r', '\n', ' ']) {
        return Err(format!("invalid path {path:?}"));
    }
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    Ok(request)
}

/// Reads the status code from the answer's first line.
async fn read_status(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<u16> {
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut buffer = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    let line_end = loop {
        if let Some(end) = buffer.windows(2).position(|w| w == b"\r\n") {
            break end;
        }
        if buffer.len() >= STATUS_LINE_MAX {
            return Err(invalid("no status line in the answer".into()));
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(invalid("the connection closed before a status line".into()));
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let line = String::from_utf8_lossy(&buffer[..line_end]).into_owned();
    let mut parts = line.split(' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(invalid(format!("malformed status line {line:?}")));
    };
    if !version.starts_with("HTTP/") {
        return Err(invalid(format!("malformed status line {line:?}")));
    }
    code.parse()
        .map_err(|_| invalid(format!("malformed status line {line:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    use bosun_proto::api::{ContainerPort, HttpHeader, TcpSocketAction};
    use tokio::net::TcpListener;

    const SECOND: Duration = Duration::from_secs(1);

    fn numbered(n: u16) -> Option<IntOrString> {
        Some(IntOrString {
            value: Some(int_or_string::Value::IntValue(i32::from(n))),
        })
    }

    fn named(name: &str) -> Option<IntOrString> {
        Some(IntOrString {
            value: Some(int_or_string::Value::StrValue(name.into())),
        })
    }

    fn target() -> Target {
        Target {
            container_id: "c1".into(),
            pod_ip: Some("127.0.0.1".into()),
            ports: HashMap::new(),
        }
    }

    /// A one-shot HTTP server answering `status`; returns its port and the
    /// request it saw.
    async fn answer_once(status_line: &'static str) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut chunk = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&chunk[..n]);
            }
            stream
                .write_all(format!("{status_line}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                .await
                .unwrap();
            String::from_utf8(request).unwrap()
        });
        (port, seen)
    }

    fn http_probe(port: Option<IntOrString>, path: &str) -> Probe {
        Probe {
            http_get: Some(HttpGetAction {
                path: path.into(),
                port,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn http_statuses_from_200_to_399_pass() {
        let cases = [
            ("HTTP/1.1 200 OK", true),
            ("HTTP/1.1 204 No Content", true),
            ("HTTP/1.0 302 Found", true),
            ("HTTP/1.1 399 Odd", true),
            ("HTTP/1.1 404 Not Found", false),
            ("HTTP/1.1 500 Internal Server Error", false),
            ("SSH-2.0-OpenSSH", false),
        ];
        let runtime = crate::runtime::fake::FakeRuntime::default();
        for (status_line, passes) in cases {
            let (port, _) = answer_once(status_line).await;
            let outcome = check(&runtime, &http_probe(numbered(port), "/healthz"), &target(), SECOND).await;
            assert_eq!(outcome == Outcome::Success, passes, "{status_line}: {outcome:?}");
        }
    }

    #[tokio::test]
    async fn http_sends_the_path_headers_and_a_named_port() {
        let (port, seen) = answer_once("HTTP/1.1 200 OK").await;
        let mut probe = http_probe(named("web"), "healthz?full=1");
        probe.http_get.as_mut().unwrap().http_headers = vec![
            HttpHeader {
                name: "X-Probe".into(),
                value: "yes".into(),
            },
            HttpHeader {
                name: "host".into(),
                value: "example.test".into(),
            },
        ];
        let container = Container {
            ports: vec![ContainerPort {
                name: "web".into(),
                container_port: i32::from(port),
                ..Default::default()
            }],
            ..Default::default()
        };
        let target = Target::new("c1", Some("127.0.0.1".into()), &container);
        let runtime = crate::runtime::fake::FakeRuntime::default();
        assert_eq!(check(&runtime, &probe, &target, SECOND).await, Outcome::Success);
        let request = seen.await.unwrap();
        assert!(request.starts_with("GET /healthz?full=1 HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("\r\nX-Probe: yes\r\n"), "{request}");
        assert!(request.contains("\r\nhost: example.test\r\n"), "{request}");
        assert!(
            !request.contains("Host: 127.0.0.1"),
            "the probe's Host replaces ours: {request}"
        );
    }

    #[tokio::test]
    async fn network_checks_fail_on_refused_silent_and_unnamed_ports() {
        let runtime = crate::runtime::fake::FakeRuntime::default();
        // A bound port nobody accepts on answers nothing: the timeout ends it.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_port = silent.local_addr().unwrap().port();
        let closed_port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let tcp = |port| Probe {
            tcp_socket: Some(TcpSocketAction {
                port,
                ..Default::default()
            }),
            ..Default::default()
        };
        let timeout = Duration::from_millis(200);
        let cases = [
            ("tcp to a listener", tcp(numbered(silent_port)), true),
            ("tcp to a closed port", tcp(numbered(closed_port)), false),
            ("tcp to an unknown name", tcp(named("nope")), false),
            (
                "http to a silent listener",
                http_probe(numbered(silent_port), "/"),
                false,
            ),
            ("http to a closed port", http_probe(numbered(closed_port), "/"), false),
        ];
        for (name, probe, passes) in cases {
            let outcome = check(&runtime, &probe, &target(), timeout).await;
            assert_eq!(outcome == Outcome::Success, passes, "{name}: {outcome:?}");
        }
        let no_ip = Target {
            pod_ip: None,
            ..target()
        };
        let outcome = check(&runtime, &tcp(numbered(silent_port)), &no_ip, timeout).await;
        assert_eq!(outcome, Outcome::Failure("the pod has no IP address".into()));
    }

    #[tokio::test]
    async fn exec_passes_on_exit_code_zero_only() {
        let runtime = crate::runtime::fake::FakeRuntime::default();
        let id = runtime.create_container(&Default::default()).await.unwrap();
        let target = Target {
            container_id: id.clone(),
            ..target()
        };
        let outcome = check(&runtime, &exec_probe(), &target, SECOND).await;
        assert!(
            matches!(&outcome, Outcome::Failure(m) if m.contains("not running")),
            "{outcome:?}"
        );
        runtime.start_container(&id).await.unwrap();
        let probe = exec_probe();
        assert_eq!(check(&runtime, &probe, &target, SECOND).await, Outcome::Success);
        runtime.set_exec_exit_code(&id, 1);
        let outcome = check(&runtime, &probe, &target, SECOND).await;
        assert!(
            matches!(&outcome, Outcome::Failure(m) if m.contains("exited with 1")),
            "{outcome:?}"
        );
        runtime.set_unreachable(true);
        let outcome = check(&runtime, &probe, &target, SECOND).await;
        assert!(matches!(outcome, Outcome::Unknown(_)), "{outcome:?}");
    }

    fn exec_probe() -> Probe {
        Probe {
            exec: Some(bosun_proto::api::ExecAction {
                command: vec!["cat".into(), "/tmp/healthy".into()],
            }),
            ..Default::default()
        }
    }

    /// A self-signed certificate and its key, for the HTTPS tests only
    /// (made with `openssl req -x509 -newkey ec ... -subj /CN=probe.test`).
    const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBgTCCASegAwIBAgIUEOwO7ZEnZCnZGltUUMwE9JPnTNQwCgYIKoZIzj0EAwIw\nFTETMBEGA1UEAwwKcHJvYmUudGVzdDAgFw0yNjExMzAxMDM2NTBaGA8yMTI2MTEw\nNjEwMzY1MFowFTETMBEGA1UEAwwKcHJvYmUudGVzdDBZMBMGByqGSM49AgEGCCqG\nSM49AwEHA0IABDUhNPBw0FFuanazN60zC/OQtkUvncFk+qHgdxW4grbndWo0Km+o\nY2hSI9aaEBo9v6WNip2pv1a5KGa4nGVqbXqjUzBRMB0GA1UdDgQWBBTxV6zvm9Cl\noWdFpopA/dDvhqv/ATAfBgNVHSMEGDAWgBTxV6zvm9CloWdFpopA/dDvhqv/ATAP\nBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQD8DMnU7SPT1YQiYHYv\nMJUjzTFMW+2pHeW3XLzeHHUM0AIgCeLjk8MCS6iHO/Rt4mcdh2w1oCQEdmbi1EOF\n06Q1bmM=\n-----END CERTIFICATE-----";
    const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQguAhN4HN4Zfu5rRUz\na2pPW0i23ggRAFaPukmksYlWYkGhRANCAAQ1ITTwcNBRbmp2szetMwvzkLZFL53B\nZPqh4HcVuIK253VqNCpvqGNoUiPWmhAaPb+ljYqdqb9WuShmuJxlam16\n-----END PRIVATE KEY-----";

    /// A one-shot HTTPS server answering `status_line`; returns its port.
    async fn answer_once_over_tls(status_line: &'static str) -> u16 {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::PrivateKeyDer;

        let cert = CertificateDer::from_pem_slice(TEST_CERT.as_bytes()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(TEST_KEY.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let Ok(mut stream) = acceptor.accept(stream).await else {
                return;
            };
            let mut request = Vec::new();
            let mut chunk = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&chunk[..n]),
                }
            }
            let answer = format!("{status_line}\r\nContent-Length: 0\r\n\r\n");
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
        port
    }

    #[tokio::test]
    async fn https_probes_speak_tls_and_accept_any_certificate() {
        let runtime = crate::runtime::fake::FakeRuntime::default();
        let https = |port: u16| {
            let mut probe = http_probe(numbered(port), "/healthz");
            probe.http_get.as_mut().unwrap().scheme = "HTTPS".into();
            probe
        };
        let port = answer_once_over_tls("HTTP/1.1 200 OK").await;
        assert_eq!(check(&runtime, &https(port), &target(), SECOND).await, Outcome::Success);

        let port = answer_once_over_tls("HTTP/1.1 503 Service Unavailable").await;
        let outcome = check(&runtime, &https(port), &target(), SECOND).await;
        let Outcome::Failure(message) = outcome else {
            panic!("a 503 fails: {outcome:?}")
        };
        assert!(
            message.starts_with("GET https://127.0.0.1:") && message.ends_with("status code 503"),
            "{message}"
        );

        // HTTPS to a plain HTTP server, and plain HTTP to a TLS one, fail.
        let (port, _) = answer_once("HTTP/1.1 200 OK").await;
        assert!(matches!(
            check(&runtime, &https(port), &target(), SECOND).await,
            Outcome::Failure(_)
        ));
        let port = answer_once_over_tls("HTTP/1.1 200 OK").await;
        let plain = http_probe(numbered(port), "/healthz");
        assert!(matches!(
            check(&runtime, &plain, &target(), SECOND).await,
            Outcome::Failure(_)
        ));
    }
}
