//! ctl's flags and subcommands, in kubectl's habits.

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "ctl", version, about = "Drive a Bosun cluster", propagate_version = true)]
pub struct Cli {
    /// Masters to talk to, tried in order (host:port, comma-separated).
    /// Defaults to $BOSUN_SERVER, then 127.0.0.1:7420.
    #[arg(
        long,
        global = true,
        env = "BOSUN_SERVER",
        value_delimiter = ',',
        default_value = "127.0.0.1:7420"
    )]
    pub server: Vec<String>,

    /// Namespace for namespaced objects (default: "default").
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,

    #[command(subcommand)]
    pub command: Command,

    /// Where `server` came from (set by [`crate::execute`] from clap's
    /// matches; `ctl config view` shows it).
    #[arg(skip)]
    pub server_source: ServerSource,
}

/// Where the masters' addresses came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServerSource {
    /// `--server`.
    Flag,
    /// `$BOSUN_SERVER`.
    Env,
    /// Neither: 127.0.0.1:7420.
    #[default]
    Default,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create objects from manifests, or one object from flags
    /// (namespace, configmap, secret generic, deployment).
    Create(CreateArgs),
    /// Run an image in a new pod, labelled run=NAME.
    Run(RunArgs),
    /// Create objects, or update them to match the manifests.
    Apply(ApplyArgs),
    /// Replace objects with the manifests, whole (--force: delete and
    /// create them again).
    Replace(ReplaceArgs),
    /// Show what `apply -f` would change, as a unified diff (exit 1 when
    /// there are differences).
    Diff(FileArgs),
    /// List objects or show one.
    Get(GetArgs),
    /// Show an object in detail.
    Describe(DescribeArgs),
    /// Delete objects by name or from manifests.
    Delete(DeleteArgs),
    /// Mark a node unschedulable: no new pods go there.
    Cordon { node: String },
    /// Mark a node schedulable again.
    Uncordon { node: String },
    /// Cordon a node, then delete its pods with their grace periods.
    Drain(DrainArgs),
    /// Print a container's logs.
    Logs(LogsArgs),
    /// Copy files and directories to and from containers:
    /// ctl cp LOCAL POD:PATH, ctl cp POD:PATH LOCAL.
    Cp(CpArgs),
    /// Run a command in a container.
    Exec(ExecArgs),
    /// Set the number of replicas of deployments or replicasets.
    Scale(ScaleArgs),
    /// Change one field of objects: `set image`.
    Set {
        #[command(subcommand)]
        command: SetCommand,
    },
    /// Edit objects in $BOSUN_EDITOR or $EDITOR (vi by default) and save
    /// them back.
    Edit {
        /// KIND NAME... or KIND/NAME...
        #[arg(required = true)]
        objects: Vec<String>,
    },
    /// Change objects with a strategic merge, JSON merge or JSON patch.
    Patch(PatchArgs),
    /// Add, change (--overwrite) or remove (KEY-) labels of objects.
    Label(MetadataArgs),
    /// Add, change (--overwrite) or remove (KEY-) annotations of objects.
    Annotate(MetadataArgs),
    /// The kinds of object the cluster serves, with their short names.
    ApiResources,
    /// This ctl's version and the answering master's.
    Version,
    /// Wait until objects meet a condition, or are deleted.
    Wait(WaitArgs),
    /// Follow, undo, pause, resume or restart a deployment's rollout.
    Rollout {
        #[command(subcommand)]
        command: RolloutCommand,
    },
    /// The masters' Raft group.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// The fields of a kind, or of one of its fields: KIND[.FIELD.PATH]
    /// (pods.spec.containers).
    Explain {
        /// KIND or KIND.FIELD.PATH.
        path: String,
    },
    /// A shell completion script: `source <(ctl completion bash)`.
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// ctl's settings: `config view`.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// The masters ctl talks to, where that came from, and the namespace.
    View,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct CreateArgs {
    #[command(flatten)]
    pub files: FileArgs,
    #[command(subcommand)]
    pub what: Option<CreateCommand>,
}

#[derive(Subcommand, Debug)]
pub enum CreateCommand {
    /// A namespace.
    #[command(alias = "ns")]
    Namespace { name: String },
    /// A ConfigMap from literal values and files.
    #[command(alias = "cm")]
    Configmap(DataArgs),
    /// A Secret.
    Secret {
        #[command(subcommand)]
        kind: SecretCommand,
    },
    /// A Deployment of pods running the images, labelled app=NAME.
    #[command(alias = "deploy")]
    Deployment(DeploymentArgs),
}

#[derive(Subcommand, Debug)]
pub enum SecretCommand {
    /// An Opaque secret from literal values and files.
    Generic(DataArgs),
}

#[derive(Args, Debug)]
pub struct DataArgs {
    pub name: String,
    /// KEY=VALUE; repeatable.
    #[arg(long = "from-literal")]
    pub literals: Vec<String>,
    /// [KEY=]PATH: a file (its name is the key) or a directory (each of
    /// its files); repeatable.
    #[arg(long = "from-file")]
    pub files: Vec<String>,
}

#[derive(Args, Debug)]
pub struct DeploymentArgs {
    pub name: String,
    /// An image to run; one container per image. Repeatable.
    #[arg(long, required = true)]
    pub image: Vec<String>,
    #[arg(long, default_value_t = 1)]
    pub replicas: i32,
    /// A port the container listens on (with a single image).
    #[arg(long)]
    pub port: Option<i32>,
    /// The command to run, after `--` (with a single image).
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    pub name: String,
    #[arg(long, required = true)]
    pub image: String,
    /// A port the container listens on.
    #[arg(long)]
    pub port: Option<i32>,
    /// KEY=VALUE environment variables; repeatable.
    #[arg(long)]
    pub env: Vec<String>,
    /// Labels as k=v,k2=v2 (default: run=NAME).
    #[arg(short = 'l', long)]
    pub labels: Option<String>,
    /// Always, OnFailure or Never.
    #[arg(long, default_value = "Always")]
    pub restart: String,
    /// The words after `--` are the command, not the image's arguments.
    #[arg(long)]
    pub command: bool,
    /// Arguments for the image's command (or the command with --command).
    #[arg(last = true)]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct FileArgs {
    /// A manifest file, a directory of them, or - for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub files: FileArgs,
    /// "client": print what would be done and send no write; "server":
    /// send the writes as dry runs, checked by the masters and not stored;
    /// "none" (default) applies.
    #[arg(
        long,
        default_value = "none",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "client"
    )]
    pub dry_run: String,
}

#[derive(Args, Debug)]
pub struct ReplaceArgs {
    #[command(flatten)]
    pub files: FileArgs,
    /// Delete the objects and create them again (for changes an update
    /// may not make).
    #[arg(long)]
    pub force: bool,
    /// With --force: seconds a pod gets to stop (-1: its own).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
}

/// How `get` prints: `table` (default), `wide`, `yaml`, `json`, `name`, or
/// `jsonpath=TEMPLATE` (see [`crate::jsonpath`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Table,
    Wide,
    Yaml,
    Json,
    Name,
    JsonPath(String),
    /// `HEADER:.json.path,...`
    CustomColumns(String),
}

impl std::str::FromStr for Output {
    type Err = String;

    fn from_str(text: &str) -> Result<Output, String> {
        Ok(match text {
            "table" => Output::Table,
            "wide" => Output::Wide,
            "yaml" => Output::Yaml,
            "json" => Output::Json,
            "name" => Output::Name,
            "jsonpath" => return Err("template format specified but no template given".into()),
            "custom-columns" => return Err("custom-columns format specified but no custom columns given".into()),
            _ => match text.strip_prefix("jsonpath=") {
                Some(template) => Output::JsonPath(template.to_string()),
                None if text.starts_with("custom-columns=") => {
                    Output::CustomColumns(text["custom-columns=".len()..].to_string())
                }
                None => {
                    return Err(format!(
                        "unable to match a printer suitable for the output format {text:?}, allowed formats are: custom-columns, json, jsonpath, name, table, wide, yaml"
                    ))
                }
            },
        })
    }
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// Kind (pods, deploy, svc...), several comma-separated, or KIND/NAME.
    pub kind: String,
    /// Names of objects to show; all when omitted.
    pub names: Vec<String>,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector: app=web,tier!=db,env in (a,b),!legacy
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector: spec.nodeName=node-1,status.phase!=Running
    #[arg(long)]
    pub field_selector: Option<String>,
    /// A column with the value of each of these labels (comma-separated or
    /// repeated).
    #[arg(short = 'L', long = "label-columns", value_delimiter = ',')]
    pub label_columns: Vec<String>,
    /// A LABELS column with every label.
    #[arg(long)]
    pub show_labels: bool,
    /// Sort by a JSONPath field, e.g. .metadata.creationTimestamp or
    /// '{.status.containerStatuses[0].restartCount}'.
    #[arg(long)]
    pub sort_by: Option<String>,
    /// table, wide, yaml, json, name, jsonpath=TEMPLATE or
    /// custom-columns=HEADER:.json.path,...
    #[arg(short = 'o', long, default_value = "table", value_parser = clap::builder::ValueParser::new(str::parse::<Output>))]
    pub output: Output,
    /// After listing, print each change (added, modified, deleted) as it
    /// happens, until interrupted.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Print only the changes, not the objects as they are now.
    #[arg(long)]
    pub watch_only: bool,
    /// Tables (the default, wide and custom-columns) without their header
    /// row.
    #[arg(long)]
    pub no_headers: bool,
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// Kind, or KIND/NAME.
    pub kind: String,
    pub names: Vec<String>,
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Kind, or KIND/NAME (omit when using -f).
    pub kind: Option<String>,
    pub names: Vec<String>,
    /// Delete the objects in these manifests.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    /// Delete every object of the kind matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Delete every object of the kind in the namespace.
    #[arg(long, conflicts_with = "selector")]
    pub all: bool,
    /// Treat "not found" as success.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Seconds a pod gets between SIGTERM and SIGKILL (default: its
    /// terminationGracePeriodSeconds); 0 removes it at once.
    #[arg(long)]
    pub grace_period: Option<i64>,
    /// Remove the objects at once, without waiting for pods to stop
    /// (same as --grace-period=0).
    #[arg(long)]
    pub force: bool,
    /// Wait until the objects are gone (pods stop first).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub wait: bool,
    /// What happens to the objects these own: "background" (deleted after
    /// them), "foreground" (deleted before them) or "orphan" (kept).
    #[arg(
        long,
        default_value = "background",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "background"
    )]
    pub cascade: String,
}

#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// KIND NAME..., or KIND/NAME... (deployments and replicasets).
    #[arg(required = true)]
    pub resources: Vec<String>,
    /// The new number of replicas.
    #[arg(long, allow_negative_numbers = true)]
    pub replicas: Option<i64>,
    /// Scale only if the current number of replicas is this (-1: any).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub current_replicas: i64,
    /// Scale only if the object is at this resourceVersion.
    #[arg(long)]
    pub resource_version: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum SetCommand {
    /// Change container images: KIND NAME CONTAINER=IMAGE... (`*=IMAGE`
    /// for every container).
    Image {
        /// KIND NAME or KIND/NAME..., then CONTAINER=IMAGE pairs.
        #[arg(required = true)]
        args: Vec<String>,
    },
}

/// A workload named as kubectl names it: `deploy/web` or `deployment web`.
#[derive(Args, Debug)]
pub struct WorkloadArgs {
    /// TYPE NAME or TYPE/NAME (deployments).
    #[arg(required = true)]
    pub resources: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum RolloutCommand {
    /// Follow a rollout until it completes (or its progress deadline passes).
    Status {
        #[command(flatten)]
        target: WorkloadArgs,
        /// Keep watching until the rollout is done; false prints the state once.
        #[arg(
            short = 'w',
            long,
            default_value_t = true,
            action = clap::ArgAction::Set,
            num_args = 0..=1,
            require_equals = true,
            default_missing_value = "true"
        )]
        watch: bool,
        /// Give up after this long (1s, 2m, 3h; 0: never).
        #[arg(long, default_value = "0s", value_parser = crate::duration::parse)]
        timeout: std::time::Duration,
        /// Fail unless this revision is the one rolling out (0: the latest).
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        revision: i64,
    },
    /// The revisions (one per pod template) with their change causes.
    History {
        #[command(flatten)]
        target: WorkloadArgs,
        /// Show the pod template of this revision.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        revision: i64,
    },
    /// Go back to an earlier revision's pod template.
    Undo {
        #[command(flatten)]
        target: WorkloadArgs,
        /// The revision to go back to (0: the one before the latest).
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        to_revision: i64,
    },
    /// Stop rolling out template changes until resumed.
    Pause(WorkloadArgs),
    /// Roll out template changes again after a pause.
    Resume(WorkloadArgs),
    /// Replace every pod, by stamping the pod template with the time.
    Restart(WorkloadArgs),
}

#[derive(Args, Debug)]
pub struct PatchArgs {
    /// KIND NAME... or KIND/NAME...
    #[arg(required = true)]
    pub objects: Vec<String>,
    /// The patch, as JSON (or YAML).
    #[arg(short = 'p', long = "patch", required = true)]
    pub patch: String,
    /// strategic (default), merge or json.
    #[arg(long = "type", default_value = "strategic")]
    pub patch_type: String,
}

#[derive(Args, Debug)]
pub struct MetadataArgs {
    /// KIND NAME... or KIND/NAME... (or KIND with -l or --all), then
    /// KEY=VALUE to set and KEY- to remove.
    #[arg(required = true)]
    pub args: Vec<String>,
    /// Replace values that are already set.
    #[arg(long)]
    pub overwrite: bool,
    /// Every object of the kind matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Every object of the kind.
    #[arg(long)]
    pub all: bool,
    /// Only if the object is still at this resourceVersion.
    #[arg(long)]
    pub resource_version: Option<u64>,
}

#[derive(Args, Debug)]
pub struct WaitArgs {
    /// KIND/NAME..., or KIND NAME..., or KIND with -l or --all.
    pub resources: Vec<String>,
    /// condition=NAME[=VALUE] (VALUE: True when omitted),
    /// jsonpath={.field.path}=VALUE, or delete.
    #[arg(long = "for", required = true)]
    pub condition: String,
    /// Wait for every object of the kind matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Wait for every object of the kind.
    #[arg(long)]
    pub all: bool,
    /// Give up after this long (30s, 1m...); 0 checks once.
    #[arg(long, default_value = "30s", value_parser = crate::duration::parse)]
    pub timeout: std::time::Duration,
}

#[derive(Args, Debug)]
pub struct DrainArgs {
    pub node: String,
    /// Carry on when a pod cannot be deleted.
    #[arg(long)]
    pub ignore_errors: bool,
    /// Give up after this long (5m, 90s; a bare number is seconds; 0: wait
    /// as long as it takes).
    #[arg(long, default_value = "0s", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,
    /// Override the pods' grace periods (-1: each pod's own).
    #[arg(long, allow_negative_numbers = true)]
    pub grace_period: Option<i64>,
    /// Also delete pods that no controller owns (they will not come back).
    #[arg(long)]
    pub force: bool,
    /// Also delete pods with emptyDir volumes (their data is lost).
    #[arg(long, alias = "delete-local-data")]
    pub delete_emptydir_data: bool,
    /// Accepted for kubectl's sake: Bosun has no DaemonSets.
    #[arg(long)]
    pub ignore_daemonsets: bool,
}

/// kubectl's `--timeout` duration; a bare number of seconds as well, as
/// `ctl drain --timeout 60` took before.
fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    match text.parse::<u64>() {
        Ok(seconds) => Ok(std::time::Duration::from_secs(seconds)),
        Err(_) => crate::duration::parse(text),
    }
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The pod (NAME or pod/NAME), or deploy/NAME or rs/NAME for one of
    /// their pods; or -l.
    pub pod: Option<String>,
    /// The logs of every pod matching this label selector.
    #[arg(short = 'l', long, conflicts_with = "pod")]
    pub selector: Option<String>,
    /// Start each line with [pod/NAME/CONTAINER].
    #[arg(long)]
    pub prefix: bool,
    /// Most pods followed at once with -l -f.
    #[arg(long, default_value_t = 5)]
    pub max_log_requests: usize,
    /// The container (default: the one the pod's
    /// kubectl.kubernetes.io/default-container annotation names, else the
    /// first).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep streaming new output.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long)]
    pub tail: Option<i64>,
    /// The previous instance of the container (after a restart).
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Prefix each line with its time.
    #[arg(long)]
    pub timestamps: bool,
    /// Only output from the last 5s, 2m, 3h...
    #[arg(long, value_parser = crate::duration::parse, conflicts_with = "since_time")]
    pub since: Option<std::time::Duration>,
    /// Only output from this time on (RFC 3339, 2026-11-30T10:00:00Z).
    #[arg(long)]
    pub since_time: Option<String>,
}

#[derive(Args, Debug)]
pub struct CpArgs {
    /// A local path, or [NAMESPACE/]POD:PATH.
    pub source: String,
    /// A local path, or [NAMESPACE/]POD:PATH.
    pub destination: String,
    /// The container; needed when the pod has several.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// The pod (NAME or pod/NAME), or deploy/NAME or rs/NAME for one of
    /// their pods.
    pub pod: String,
    /// The container (default: the one the pod's
    /// kubectl.kubernetes.io/default-container annotation names, else the
    /// first).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass stdin to the command.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Allocate a terminal (with -i: an interactive session).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Members with id, address, role, term and applied index; the leader.
    Status {
        #[arg(short = 'o', long, value_enum, default_value_t = StatusOutput::Table)]
        output: StatusOutput,
    },
    /// Removes a master from the cluster (stop it first). Refuses the last
    /// voter, and a voter whose removal leaves too few reachable voters for
    /// a quorum unless --force.
    Remove {
        /// The master's id, as `ctl cluster status` lists it.
        id: u64,
        /// Remove it even when the remaining reachable voters are no quorum.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatusOutput {
    Table,
    Json,
}
