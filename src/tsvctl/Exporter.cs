namespace TcmuSharedVolume.Cli;

/// <summary>
/// What <c>tsvctl export iscsi</c> asks for. <paramref name="Chap"/> holds each initiator's CHAP
/// credentials; null exports without authentication (only on an explicit <c>--no-auth</c>).
/// Each of <paramref name="Portals"/> gets its own TPG; none leaves targetcli's default portal.
/// </summary>
public sealed record IscsiExport(string Volume, long Size, string Target, IReadOnlyList<string> Initiators, string Prefix,
    IReadOnlyList<(string Address, int Port)> Portals, IReadOnlyDictionary<string, ChapCredential>? Chap = null)
{
    /// <summary>ALUA: the host_id whose target port group alone is Active/Optimized (optimized_host=
    /// in every backstore's config string); null leaves every group Active/Optimized.</summary>
    public int? OptimizedHost { get; init; }
}

/// <summary>One path an iSCSI export made: an initiator, through one TPG (and its portal), to its own backstore.</summary>
public sealed record IscsiPath(string Initiator, int Tpgt, (string Address, int Port)? Portal, string Backstore);

/// <summary>
/// Builds and removes LIO exports of a shared volume through targetcli: one user:sharedvol
/// backstore per initiator (per I_T nexus, docs/architecture.md §3). All or nothing: when a step
/// fails, the steps already done are undone in reverse order before the error is reported.
/// </summary>
public sealed class Exporter(ITargetcli targetcli, LioConfigfs configfs, Func<string> newNaaWwn)
{
    private const string Backstores = "/backstores/user:sharedvol";

    /// <summary>
    /// One TPG per portal (one when no portal is given), each with one LUN and one ACL per
    /// initiator: every (initiator, TPG) pair is its own I_T nexus and its own backstore, so an
    /// initiator that logs in through several portals has several paths (multipath), each
    /// registered on its own (docs/operations.md §15).
    /// </summary>
    public IReadOnlyList<IscsiPath> ExportIscsi(IscsiExport e)
    {
        if (e.Initiators.Count == 0) throw new UsageException("give at least one --initiator");
        if (e.Initiators.Distinct().Count() != e.Initiators.Count) throw new UsageException("an --initiator is given twice");
        if (e.Portals.Distinct().Count() != e.Portals.Count) throw new UsageException("a --portal is given twice");
        if (e.Chap is { } secrets && e.Initiators.FirstOrDefault(i => !secrets.ContainsKey(i)) is { } missing)
            throw new UsageException($"--chap-secrets has no line for initiator {missing}");

        int tpgs = Math.Max(1, e.Portals.Count);
        var tx = new Transaction(targetcli);
        var paths = new List<IscsiPath>();
        for (int t = 1; t <= tpgs; t++)
        {
            for (int k = 1; k <= e.Initiators.Count; k++)
            {
                string name = tpgs == 1 ? $"{e.Prefix}-{k}" : $"{e.Prefix}-{k}-tpg{t}";
                // Several TPGs: each names its ports' relative target port identifier. LIO before
                // 6.4 numbers ports per backstore, so every one of these would say 1 and two
                // TPGs' ports would look like one (VPD 83h, RTPG, READ FULL STATUS).
                string rtpi = tpgs == 1 ? "" : $";rtpi={t}";
                string alua = e.OptimizedHost is { } h ? $";optimized_host={h}" : "";
                tx.Do($"{Backstores} create name={name} size={e.Size} cfgstring={e.Volume};initiator={Volumes.EscapeInitiator(e.Initiators[k - 1])}{rtpi}{alua}",
                    undo: $"{Backstores} delete {name}");
                paths.Add(new IscsiPath(e.Initiators[k - 1], t, e.Portals.Count == 0 ? null : e.Portals[t - 1], name));
            }
        }

        // Deleting the target removes its TPGs, portals, LUNs and ACLs with it.
        tx.Do($"/iscsi create wwn={e.Target}", undo: $"/iscsi delete wwn={e.Target}");
        for (int t = 2; t <= tpgs; t++)
            tx.Do($"/iscsi/{e.Target} create tag={t}");
        if (e.Portals.Count > 0)
        {
            // targetcli adds 0.0.0.0:3260 to TPG 1 by default (auto_add_default_portal), which
            // would hold the port: it goes before any portal of ours is created.
            tx.TryDo($"/iscsi/{e.Target}/tpg1/portals delete ip_address=0.0.0.0 ip_port=3260");
            for (int t = 1; t <= tpgs; t++)
                tx.Do($"/iscsi/{e.Target}/tpg{t}/portals create ip_address={e.Portals[t - 1].Address} ip_port={e.Portals[t - 1].Port}");
        }
        for (int t = 1; t <= tpgs; t++)
        {
            string tpg = $"/iscsi/{e.Target}/tpg{t}";
            var own = paths.Where(p => p.Tpgt == t).ToList();
            // Only the ACLs below may log in, and each sees only its own backstore. Registrations and
            // reservations belong to the initiator name, so without CHAP any host that claims an ACL's
            // name inherits them. authentication=1 goes on before the first ACL exists: there is no
            // moment in which an ACL admits a login without its secret.
            tx.Do($"{tpg} set attribute generate_node_acls=0 authentication={(e.Chap is null ? 0 : 1)}");
            for (int k = 0; k < own.Count; k++)
                tx.Do($"{tpg}/luns create storage_object={Backstores}/{own[k].Backstore} lun={k} add_mapped_luns=false");
            for (int k = 0; k < own.Count; k++)
            {
                // add_mapped_luns=false: the default would map every TPG LUN into every ACL, giving one
                // initiator the other initiators' paths and breaking the one-nexus-per-backstore rule.
                tx.Do($"{tpg}/acls create wwn={own[k].Initiator} add_mapped_luns=false");
                tx.Do($"{tpg}/acls/{own[k].Initiator} create mapped_lun=0 tpg_lun_or_backstore=lun{k}");
                if (e.Chap is { } credentials)
                {
                    var chap = credentials[own[k].Initiator];
                    tx.Check(() => configfs.SetAclChap(e.Target, t, chap), $"set the CHAP credentials of ACL {own[k].Initiator} in TPG {t}");
                }
            }
        }
        tx.Do("saveconfig");
        return paths;
    }

    public IReadOnlyList<string> ExportLoopback(string volume, long size, int nodes, string prefix)
    {
        if (nodes is < 1 or > 128) throw new UsageException("--nodes must be from 1 to 128");
        var tx = new Transaction(targetcli);
        var created = new List<string>();
        for (int k = 1; k <= nodes; k++)
        {
            string name = $"{prefix}-{k}";
            string wwn = newNaaWwn();
            tx.Do($"{Backstores} create name={name} size={size} cfgstring={volume}", undo: $"{Backstores} delete {name}");
            tx.Do($"/loopback create wwn={wwn}", undo: $"/loopback delete wwn={wwn}");
            // tcm_loop: the TPG's nexus must exist before a LUN is linked, or the SCSI scan has no
            // initiator to bind the backstore to (docs/testing.md §4). rtslib writes one; make sure.
            tx.Check(() => configfs.EnsureLoopbackNexus(wwn, newNaaWwn()), $"set the nexus of /loopback/{wwn}");
            tx.Do($"/loopback/{wwn}/luns create storage_object={Backstores}/{name} lun=0");
            created.Add($"{name} -> {wwn}");
        }
        tx.Do("saveconfig");
        return created;
    }

    /// <summary>Removes every LUN and backstore of the volume; a target left without LUNs goes too.</summary>
    public IReadOnlyList<string> Unexport(string volume)
    {
        var backstores = configfs.BackstoresOf(volume);
        if (backstores.Count == 0) throw new CliFailure($"no user:sharedvol backstore serves '{volume}'");
        var done = new List<string>();
        void Run(string command)
        {
            var r = targetcli.Run(command);
            if (!r.Ok)
                throw new CliFailure($"targetcli {command} failed: {FirstLine(r.Output)}" +
                                     (done.Count == 0 ? "; nothing was changed" : $"; already done: {string.Join(", ", done)}"));
            done.Add(command);
        }

        foreach (var target in configfs.LunsUsing(backstores).GroupBy(l => (l.Fabric, l.TargetWwn)))
        {
            var (fabric, wwn) = target.Key;
            if (configfs.TargetLunCount(fabric, wwn) == target.Count())
                Run($"/{fabric} delete wwn={wwn}");
            else
                foreach (var lun in target)
                    Run(fabric == "iscsi" ? $"/iscsi/{wwn}/tpg{lun.Tpgt}/luns delete lun={lun.Lun}" : $"/{fabric}/{wwn}/luns delete lun={lun.Lun}");
        }
        foreach (var name in backstores) Run($"{Backstores} delete {name}");
        Run("saveconfig");
        return backstores;
    }

    internal static string FirstLine(string text)
    {
        var line = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault();
        return string.IsNullOrEmpty(line) ? "(no output)" : line;
    }

    /// <summary>Steps with their undo; the first failure rolls back and throws.</summary>
    private sealed class Transaction(ITargetcli targetcli)
    {
        private readonly Stack<string> _undo = new();

        public void Do(string command, string? undo = null)
        {
            var r = targetcli.Run(command);
            if (!r.Ok) Fail($"targetcli {command} failed: {FirstLine(r.Output)}");
            if (undo is not null) _undo.Push(undo);
        }

        /// <summary>A step whose failure is expected on some hosts and harmless.</summary>
        public void TryDo(string command) => targetcli.Run(command);

        public void Check(Action step, string what)
        {
            try
            {
                step();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Fail($"cannot {what}: {ex.Message}");
            }
        }

        private void Fail(string message)
        {
            int undone = _undo.Count;
            var leftovers = new List<string>();
            while (_undo.TryPop(out var undo))
                if (!targetcli.Run(undo).Ok) leftovers.Add(undo);
            throw new CliFailure(message + (leftovers.Count == 0
                ? undone == 0 ? "; nothing was changed" : $"; rolled back ({undone} step(s) undone)"
                : $"; rollback incomplete, run by hand: {string.Join(" ; ", leftovers.Select(l => "targetcli " + l))}"));
        }
    }
}
