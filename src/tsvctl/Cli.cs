using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.Json;
using TcmuSharedVolume.Linux.DBus;

namespace TcmuSharedVolume.Cli;

/// <summary>What tsvctl talks to; tests replace each part.</summary>
public sealed class CliContext
{
    public required ITargetcli Targetcli { get; init; }
    public required Func<IDaemonAdmin> Admin { get; init; }
    public IJournalReader Journal { get; init; } = new ProcessJournalctl();
    public LioConfigfs Configfs { get; init; } = new();
    /// <summary>Runs lvm2's commands (lvs, lvcreate, lvextend, lvremove).</summary>
    public ICommandRunner Commands { get; init; } = new ProcessRunner();
    public Func<string> NewNaaWwn { get; init; } = RandomNaaWwn;
    public TextReader In { get; init; } = Console.In;
    public TextWriter Out { get; init; } = Console.Out;
    public TextWriter Error { get; init; } = Console.Error;

    /// <summary>Waits between two refreshes of status --watch (tests do not wait).</summary>
    public Action<TimeSpan, CancellationToken> Sleep { get; init; } = (t, stop) => stop.WaitHandle.WaitOne(t);

    /// <summary>NAA type 5 with LIO's OUI 00-14-05, as rtslib generates them.</summary>
    public static string RandomNaaWwn() =>
        "naa.5001405" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(5))[..9];
}

/// <summary>
/// tsvctl's commands. Exit codes: 0 success, 1 the operation failed, 2 the command line is
/// wrong. Every error is one line on stderr starting with "tsvctl: ".
/// </summary>
public static class Cli
{
    public const int Ok = 0, Failure = 1, Usage = 2;

    /// <summary>"tsvctl export iscsi" for the deepest command the words matched.</summary>
    private static string CommandPath(CommandResult result)
    {
        var names = new List<string>();
        for (SymbolResult? r = result; r != null; r = r.Parent)
            if (r is CommandResult c) names.Add(c.Command is RootCommand ? "tsvctl" : c.Command.Name); // the root is named after the host process
        names.Reverse();
        return string.Join(' ', names);
    }

    public static int Run(string[] args, CliContext ctx)
    {
        var root = Build(ctx);
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            // A mistyped word also leaves its command "not provided"; naming the word is what helps.
            string message = parse.UnmatchedTokens.Count > 0
                ? $"unknown command or argument '{parse.UnmatchedTokens[0]}'"
                : parse.Errors[0].Message.TrimEnd('.');
            ctx.Error.WriteLine($"tsvctl: {message} (see {CommandPath(parse.CommandResult)} --help)");
            return Usage;
        }
        try
        {
            return parse.Invoke(new InvocationConfiguration { Output = ctx.Out, Error = ctx.Error, EnableDefaultExceptionHandler = false });
        }
        catch (UsageException e)
        {
            ctx.Error.WriteLine($"tsvctl: {e.Message}");
            return Usage;
        }
        catch (CliFailure e)
        {
            ctx.Error.WriteLine($"tsvctl: {e.Message}");
            return Failure;
        }
    }

    private static RootCommand Build(CliContext ctx)
    {
        var root = new RootCommand("Administer tcmu-shared-volume: shared volumes served to many initiators with their own SCSI-3 reservations.");

        // volume create | resize | delete
        var volume = new Command("volume", "Backing files, LVM logical volumes and RBD images.");
        // The Ceph client of an RBD image: what the rbd tool and the daemon use to reach the cluster.
        var confOpt = new Option<string?>("--conf") { Description = "rbd:POOL/IMAGE only: the ceph.conf to use (default: /etc/ceph/ceph.conf)." };
        var idOpt = new Option<string?>("--id") { Description = "rbd:POOL/IMAGE only: the Ceph client id, without 'client.' (default: admin)." };
        var createPath = new Argument<string>("VOLUME")
        {
            Description = "Sparse file to create, lvm:VG/NAME for an LVM logical volume (lvcreate) in volume group VG, " +
                          "or rbd:POOL/IMAGE for an RBD image (rbd create) that several hosts may serve.",
        };
        var createSize = new Option<string>("--size") { Description = "Size, e.g. 10G (K, M, G, T = 1024^n); lvm rounds up to whole extents.", Required = true };
        var thinOpt = new Option<string?>("--thin") { Description = "lvm:VG/NAME only: a thin LV in thin pool POOL of VG (UNMAP then frees pool space)." };
        var create = new Command("create", "Create a sparse backing file, an LVM logical volume or an RBD image; never overwrites.")
            { createPath, createSize, thinOpt, confOpt, idOpt };
        create.SetAction(p =>
        {
            VolumeLifecycle.Create(ctx, p.GetValue(createPath)!, Volumes.ParseSize(p.GetValue(createSize)!), p.GetValue(thinOpt),
                p.GetValue(confOpt), p.GetValue(idOpt));
            return Ok;
        });
        volume.Add(create);

        var resizePath = new Argument<string>("VOLUME") { Description = "Backing file, block device, lvm:VG/NAME or rbd:POOL/IMAGE." };
        var resizeSize = new Option<string>("--size") { Description = "New size, e.g. 200G; growing only.", Required = true };
        var resize = new Command("resize",
            "Grow a volume (lvextend for an LV, rbd resize for an image, sparse for a file) and every backstore serving it on this host: " +
            "each initiator is told CAPACITY DATA HAS CHANGED.")
            { resizePath, resizeSize, confOpt, idOpt };
        resize.SetAction(p =>
        {
            VolumeLifecycle.Resize(ctx, p.GetValue(resizePath)!, Volumes.ParseSize(p.GetValue(resizeSize)!), p.GetValue(confOpt), p.GetValue(idOpt));
            return Ok;
        });
        volume.Add(resize);

        var deletePath = new Argument<string>("VOLUME") { Description = "Backing file, LV device path, lvm:VG/NAME or rbd:POOL/IMAGE." };
        var deleteYes = new Option<bool>("--yes") { Description = "Do not ask: the volume and all its data are gone." };
        var delete = new Command("delete",
            "Delete a backing file, LV (lvremove) or RBD image (rbd rm, and its reservation table); refused while any host exports it, asks first.")
            { deletePath, deleteYes, confOpt, idOpt };
        delete.SetAction(p =>
        {
            VolumeLifecycle.Delete(ctx, p.GetValue(deletePath)!, p.GetValue(deleteYes), p.GetValue(confOpt), p.GetValue(idOpt));
            return Ok;
        });
        volume.Add(delete);
        root.Add(volume);

        // export iscsi | loopback
        var export = new Command("export", "Export a volume through LIO (runs targetcli).");
        var volumeOpt = new Option<string>("--volume") { Description = "Backing file, block device, lvm:VG/NAME or rbd:POOL/IMAGE.", Required = true };
        var nameOpt = new Option<string?>("--name") { Description = "Backstore name prefix (default: the file or image name)." };

        var targetOpt = new Option<string>("--target") { Description = "Target IQN to create.", Required = true };
        var initiatorOpt = new Option<string[]>("--initiator")
        {
            Description = "Initiator IQN; repeat once per initiator. Each gets its own backstore and its own LUN 0.",
            Required = true,
            Arity = ArgumentArity.OneOrMore,
        };
        var portalOpt = new Option<string[]>("--portal")
        {
            Description = "IP[:PORT] to listen on (default: targetcli's 0.0.0.0:3260). Repeat for several portals: each gets its own TPG, " +
                          "so an initiator that logs in through each has one path (and one registration) per portal, for multipath.",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var chapOpt = new Option<string?>("--chap-secrets")
        {
            Description = "File ('-' for stdin) with one line per initiator: INITIATOR_IQN USER SECRET [MUTUAL_USER MUTUAL_SECRET]; " +
                          "mode 0600 or stricter. Each ACL then requires CHAP (mutual CHAP with the last two fields).",
        };
        var noAuthOpt = new Option<bool>("--no-auth")
        {
            Description = "Export without CHAP: any host that presents an initiator's name gets its LUN, registrations and reservations.",
        };
        var optimizedOpt = new Option<int?>("--optimized-host")
        {
            Description = "ALUA: the host_id whose target port group alone is Active/Optimized, the other hosts' Active/Non-optimized " +
                          "(multipath then sends I/O to that host while it has a working path). Give every host the same. " +
                          "Default: every host Active/Optimized (active/active).",
        };
        var iscsi = new Command("iscsi", "One iSCSI target, one ACL and one backstore per initiator; CHAP required unless --no-auth.")
            { volumeOpt, targetOpt, initiatorOpt, portalOpt, nameOpt, chapOpt, noAuthOpt, optimizedOpt, confOpt, idOpt };
        iscsi.SetAction(p =>
        {
            var source = ExportSource.Of(p.GetValue(volumeOpt)!, p.GetValue(confOpt), p.GetValue(idOpt));
            var path = source.Path;
            var request = new IscsiExport(
                source.Config,
                0,
                Volumes.CheckIscsiName(p.GetValue(targetOpt)!, "--target"),
                p.GetValue(initiatorOpt)!.Select(i => Volumes.CheckIscsiName(i, "--initiator")).ToArray(),
                Volumes.CheckPrefix(p.GetValue(nameOpt) ?? Volumes.DefaultPrefix(path)),
                (p.GetValue(portalOpt) ?? []).Select(Volumes.ParsePortal).ToArray());
            if (p.GetValue(optimizedOpt) is { } optimized)
            {
                // The daemon would refuse the config string; say so before targetcli runs.
                if (optimized is < 1 or > TcmuSharedVolume.Volumes.PortGroupDirectory.MaxGroup)
                    throw new UsageException($"--optimized-host {optimized} must be a host_id, 1 to {TcmuSharedVolume.Volumes.PortGroupDirectory.MaxGroup} (1 also for a host without host_id)");
                request = request with { OptimizedHost = optimized };
            }
            if (!request.Target.StartsWith("iqn.", StringComparison.Ordinal))
                throw new UsageException($"--target '{request.Target}' must be an iqn. name");
            string? secretsSource = p.GetValue(chapOpt);
            bool noAuth = p.GetValue(noAuthOpt);
            if (secretsSource is null && !noAuth)
                throw new UsageException("give --chap-secrets FILE (CHAP for every initiator), or --no-auth to let any host that claims an initiator's name log in as it");
            if (secretsSource is not null && noAuth)
                throw new UsageException("--chap-secrets and --no-auth exclude each other");
            if (secretsSource is not null) request = request with { Chap = ChapSecrets.Load(secretsSource, ctx.In) };
            request = request with { Size = source.Size(ctx) };
            var paths = Exporter(ctx).ExportIscsi(request);
            foreach (var x in paths)
                ctx.Out.WriteLine($"{x.Initiator}: LUN 0 = user:sharedvol/{x.Backstore}" +
                                  (request.Portals.Count > 1 ? $" via tpg{x.Tpgt} {x.Portal!.Value.Address}:{x.Portal.Value.Port}" : "") +
                                  (request.Chap?[x.Initiator] is { } chap ? (chap.Mutual ? ", mutual CHAP" : ", CHAP") : ", no authentication"));
            ctx.Out.WriteLine($"exported {path} on {request.Target} to {request.Initiators.Count} initiator(s)" +
                              (request.Portals.Count > 1 ? $" through {request.Portals.Count} portals, one TPG each" : "") + "; configuration saved");
            if (noAuth)
                ctx.Error.WriteLine("tsvctl: warning: exported without CHAP (--no-auth): any host that presents one of these initiator names " +
                                    "logs in as that initiator and inherits its registrations and reservations");
            return Ok;
        });

        var nodesOpt = new Option<int>("--nodes") { Description = "Number of tcm_loop targets (local SCSI disks), one backstore each.", DefaultValueFactory = _ => 2 };
        var loopback = new Command("loopback", "Local SCSI disks through tcm_loop, one per simulated node.") { volumeOpt, nodesOpt, nameOpt, confOpt, idOpt };
        loopback.SetAction(p =>
        {
            var source = ExportSource.Of(p.GetValue(volumeOpt)!, p.GetValue(confOpt), p.GetValue(idOpt));
            var path = source.Path;
            var prefix = Volumes.CheckPrefix(p.GetValue(nameOpt) ?? Volumes.DefaultPrefix(path));
            int nodes = p.GetValue(nodesOpt);
            if (nodes is < 1 or > 128) throw new UsageException("--nodes must be from 1 to 128");
            foreach (var line in Exporter(ctx).ExportLoopback(source.Config, source.Size(ctx), nodes, prefix))
                ctx.Out.WriteLine(line);
            ctx.Out.WriteLine($"exported {path} through {nodes} loopback target(s); configuration saved");
            return Ok;
        });
        export.Add(iscsi);
        export.Add(loopback);
        root.Add(export);

        var unexportVolume = new Option<string>("--volume") { Description = "Backing file, block device, lvm:VG/NAME or rbd:POOL/IMAGE.", Required = true };
        var unexport = new Command("unexport", "Remove every LUN and backstore of a volume on this host (the file, LV or image stays).") { unexportVolume };
        unexport.SetAction(p =>
        {
            var path = Volumes.Canonical(p.GetValue(unexportVolume)!);
            var removed = Exporter(ctx).Unexport(path);
            ctx.Out.WriteLine($"unexported {path}: removed {string.Join(", ", removed)}; configuration saved");
            return Ok;
        });
        root.Add(unexport);

        // status
        var jsonOpt = new Option<bool>("--json") { Description = "Machine-readable output." };
        var watchOpt = new Option<bool>("--watch") { Description = "A live table, refreshed every --interval: IOPS, MiB/s and p99 latency per path, registrations, holder." };
        var intervalOpt = new Option<double>("--interval") { Description = "Seconds between refreshes of --watch (0.5 to 3600).", DefaultValueFactory = _ => 2 };
        var countOpt = new Option<int>("--count") { Description = "Stop --watch after this many tables (0: until Ctrl-C).", DefaultValueFactory = _ => 0 };
        var status = new Command("status", "What the daemon serves: volumes, paths, reservations.") { jsonOpt, watchOpt, intervalOpt, countOpt };
        status.SetAction(p =>
        {
            if (p.GetValue(watchOpt))
            {
                if (p.GetValue(jsonOpt)) throw new UsageException("--watch and --json exclude each other (--json shows the counters once)");
                double interval = p.GetValue(intervalOpt);
                if (interval is < 0.5 or > 3600 || double.IsNaN(interval)) throw new UsageException("--interval must be from 0.5 to 3600 seconds");
                int count = p.GetValue(countOpt);
                if (count < 0) throw new UsageException("--count must be 0 or more");
                return Watch.Run(ctx, () => Status(ctx).Parsed, TimeSpan.FromSeconds(interval), count);
            }
            var (json, parsed) = Status(ctx);
            ctx.Out.WriteLine(p.GetValue(jsonOpt) ? json : Render(parsed));
            return Ok;
        });
        root.Add(status);

        // pr show | clear
        var pr = new Command("pr", "Persistent reservations of a volume.");
        var showVolume = new Argument<string>("VOLUME") { Description = "Backing path, lvm:VG/NAME, rbd:POOL/IMAGE or unit serial." };
        var showJson = new Option<bool>("--json") { Description = "Machine-readable output." };
        var show = new Command("show", "Registrations and reservation of a volume.") { showVolume, showJson };
        show.SetAction(p =>
        {
            var (_, parsed) = Status(ctx);
            var v = Find(parsed, p.GetValue(showVolume)!);
            ctx.Out.WriteLine(p.GetValue(showJson)
                ? JsonSerializer.Serialize(v, AdminJsonContext.Default.VolumeStatus)
                : RenderVolume(v));
            return Ok;
        });
        var clearVolume = new Argument<string>("VOLUME") { Description = "Backing path, lvm:VG/NAME, rbd:POOL/IMAGE or unit serial." };
        var yes = new Option<bool>("--yes-i-know") { Description = "Confirm: this drops every registration and the reservation; a fenced node may write again." };
        var clear = new Command("clear",
            "Drop all registrations and the reservation of a volume (of an RBD volume: on every host that serves it).") { clearVolume, yes };
        clear.SetAction(p =>
        {
            if (!p.GetValue(yes))
                throw new UsageException("clearing reservations can let a fenced node write again; add --yes-i-know if that is what you want");
            string key = Volumes.StatusKey(p.GetValue(clearVolume)!);
            using var admin = ctx.Admin();
            var (ok, message) = admin.ClearReservations(key, confirm: true);
            if (!ok) throw new CliFailure(message);
            ctx.Out.WriteLine(message);
            return Ok;
        });
        var historyVolume = new Argument<string>("VOLUME") { Description = "Backing path, lvm:VG/NAME, rbd:POOL/IMAGE or unit serial." };
        var history = new Command("history", "Every reservation change of a volume, from the journal: who registered, reserved, preempted whom.") { historyVolume };
        history.SetAction(p =>
        {
            string key = Volumes.StatusKey(p.GetValue(historyVolume)!);
            var entries = History.Parse(ctx.Journal.Read(History.JournalctlArguments(key)));
            if (entries.Count == 0)
            {
                ctx.Out.WriteLine($"no reservation changes of {key} in the journal " +
                                  "(the journal keeps those it can see: run as root or in group systemd-journal)");
                return Ok;
            }
            ctx.Out.WriteLine(History.Render(entries));
            return Ok;
        });
        pr.Add(show);
        pr.Add(clear);
        pr.Add(history);
        root.Add(pr);
        return root;
    }

    private static Exporter Exporter(CliContext ctx) => new(ctx.Targetcli, ctx.Configfs, ctx.NewNaaWwn);

    private static (string Json, AdminStatus Parsed) Status(CliContext ctx)
    {
        using var admin = ctx.Admin();
        string json = admin.GetStatusJson();
        try
        {
            return (json, AdminJsonContext.Deserialize(json));
        }
        catch (JsonException e)
        {
            throw new CliFailure($"the daemon's status is not readable by this tsvctl (version mismatch?): {e.Message}");
        }
    }

    private static VolumeStatus Find(AdminStatus status, string volume)
    {
        string path = Volumes.StatusKey(volume);
        return status.Volumes.FirstOrDefault(v => v.BackingPath == path || v.UnitSerial == volume)
               ?? throw new CliFailure($"the daemon serves no volume '{volume}' (see tsvctl status)");
    }

    internal static string Render(AdminStatus s)
    {
        var lines = new List<string> { $"tcmu-shared-volume {s.Version}: {s.Volumes.Count} volume(s)" };
        lines.AddRange(s.Volumes.Select(RenderVolume));
        return string.Join('\n', lines);
    }

    internal static string RenderVolume(VolumeStatus v)
    {
        var lines = new List<string>
        {
            $"{v.BackingPath}  serial {v.UnitSerial}  {Human(v.SizeBytes)}  block {v.BlockSize}  {v.Paths.Count} path(s)",
        };
        foreach (var p in v.Paths)
            lines.Add(p.Initiator is null
                ? $"  path {p.Backstore}: UNBOUND ({p.UnboundReason}); serves I/O, refuses PR OUT"
                : $"  path {p.Backstore}: {p.Initiator}{(p.TargetPort is null ? "" : " -> " + p.TargetPort)}");
        var r = v.Reservations;
        lines.Add($"  PR generation {r.Generation}{(r.Aptpl ? ", APTPL" : "")}, {r.Registrations.Count} registration(s)");
        foreach (var reg in r.Registrations)
            lines.Add($"    key 0x{reg.Key}  {reg.Initiator}{(reg.TargetPort is null ? "" : " -> " + reg.TargetPort)}");
        lines.Add(r.Reservation is { } res
            ? $"  reservation: {res.Type}, key 0x{res.Key}{(res.Holder is null ? "" : ", holder " + res.Holder)}"
            : "  reservation: none");
        if (r.Spc2ReservedBy is not null) lines.Add($"  SPC-2 reserved by {r.Spc2ReservedBy}");
        if (v.Shared is { } shared) lines.AddRange(RenderShared(shared));
        return string.Join('\n', lines);
    }

    /// <summary>An RBD volume's shared table (docs/operations.md §10): its version and every host recorded in it.</summary>
    private static IEnumerable<string> RenderShared(SharedTableStatus t)
    {
        int serving = t.Hosts.Count(h => h.State == "serving");
        yield return $"  shared table {t.TableObject}: version {t.Version}, " +
                     (t.HostsError is null ? $"{serving} host(s) serving" : $"hosts unknown ({t.HostsError})");
        foreach (var h in t.Hosts.OrderBy(h => h.State == "gone").ThenBy(h => h.HostId ?? int.MaxValue).ThenBy(h => h.Client))
        {
            string who = (h.HostId is { } id ? $"host {id}" : "host ?") + (h.HostName is null ? "" : $" ({h.HostName})") + $", client.{h.Client}";
            string state = h.State switch
            {
                "gone" => "gone: stale record, removed when a host next starts or rejoins",
                "not answering" => "NOT ANSWERING: the next change waits for it, then fences it",
                _ => "serving",
            };
            yield return $"    {who}{(h.ThisHost ? " (this host)" : "")}: {state}{(h.Since is null ? "" : $", since {h.Since}")}";
        }
    }

    private static string Human(long bytes)
    {
        string[] units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
        double v = bytes;
        int u = 0;
        while (v >= 1024 && u < units.Length - 1) { v /= 1024; u++; }
        return u == 0 ? $"{bytes} bytes" : v.ToString("0.#", CultureInfo.InvariantCulture) + " " + units[u];
    }
}
