namespace TcmuSharedVolume.Cli;

/// <summary>
/// <c>tsvctl volume create | resize | delete</c> for sparse files, LVM logical volumes
/// (<c>lvm:VG/NAME</c>) and RBD images (<c>rbd:POOL/IMAGE</c>). A volume that is exported is
/// grown through its backstores' dev_size, so that the daemon tells every initiator (CAPACITY
/// DATA HAS CHANGED); it is never deleted.
/// </summary>
public static class VolumeLifecycle
{
    /// <summary>rbd:POOL/IMAGE with its Ceph client; null for a file or an LV, which take no --conf or --id.</summary>
    public static RbdImage? Image(string volume, string? cephConf, string? clientId)
    {
        if (RbdImage.Parse(volume, cephConf, clientId) is { } image) return image;
        if (cephConf is not null || clientId is not null)
            throw new UsageException("--conf and --id are for RBD images (rbd:POOL/IMAGE)");
        return null;
    }

    /// <summary>" --conf X --id Y" as given, for the next command tsvctl suggests.</summary>
    public static string ClientOptions(RbdImage image) =>
        (image.CephConf is null ? "" : " --conf " + image.CephConf) + (image.ClientId is null ? "" : " --id " + image.ClientId);

    public static void Create(CliContext ctx, string volume, long size, string? thinPool, string? cephConf = null, string? clientId = null)
    {
        if (Image(volume, cephConf, clientId) is { } image)
        {
            if (thinPool is not null) throw new UsageException("--thin is for LVM volumes (lvm:VG/NAME)");
            long made = new Rbd(ctx.Commands).Create(image, size);
            ctx.Out.WriteLine($"created {image} ({made} bytes, RBD image with features {Rbd.Features})");
            ctx.Out.WriteLine($"export it on each host that serves it: tsvctl export iscsi --volume {image}{ClientOptions(image)} ...");
            return;
        }
        if (LogicalVolume.Parse(volume) is { } lv)
        {
            if (thinPool is not null) LogicalVolume.CheckName(thinPool, "thin pool");
            var made = new Lvm(ctx.Commands).Create(lv, size, thinPool);
            string kind = thinPool is null ? "thick LV" : $"thin LV in pool {lv.Group}/{thinPool}";
            ctx.Out.WriteLine($"created {lv.DevicePath} ({made.SizeBytes} bytes, {kind})");
            ctx.Out.WriteLine($"export it: tsvctl export iscsi --volume {lv.DevicePath} ...");
            return;
        }
        if (thinPool is not null) throw new UsageException("--thin is for LVM volumes (lvm:VG/NAME)");
        var path = Volumes.Create(volume, size);
        ctx.Out.WriteLine($"created {path} ({size} bytes, sparse)");
    }

    public static void Resize(CliContext ctx, string volume, long size, string? cephConf = null, string? clientId = null)
    {
        var image = Image(volume, cephConf, clientId);
        var path = Volumes.Canonical(volume);
        var lvm = new Lvm(ctx.Commands);
        var lv = image is null ? LogicalVolume.Parse(volume) ?? (Volumes.BlockDeviceSize(path) is not null ? lvm.OfDevice(path) : null) : null;
        long newSize;
        string others = "";
        if (image is not null)
        {
            var rbd = new Rbd(ctx.Commands);
            bool exported = ctx.Configfs.BackstoresOf(path).Count > 0;
            if (exported)
            {
                // The daemon grows the image itself (librbd) when its backstores are told the new size.
                Rbd.CheckGrowing(image, rbd.Size(image) ?? throw new CliFailure($"RBD image {image.Pool}/{image.Image} does not exist"), size);
                newSize = size;
            }
            else
            {
                newSize = rbd.Grow(image, size);
            }
            // Each host that serves the image has it open once; the others learn the size only from their own backstores.
            int elsewhere = rbd.Watchers(image).Count - (exported ? 1 : 0);
            if (elsewhere > 0)
                others = $"\n{elsewhere} other client(s) have {image} open, e.g. other hosts serving it: run " +
                         $"tsvctl volume resize {image} --size {newSize}{ClientOptions(image)} on each of them, so that their initiators are told too";
        }
        else if (lv is { } l)
        {
            newSize = lvm.Extend(l, size);
        }
        else if (Volumes.BlockDeviceSize(path) is { } device)
        {
            if (device < size)
                throw new CliFailure($"{path} is a block device of {device} bytes and not an LVM logical volume: grow it first, then resize to its size");
            newSize = size;
        }
        else
        {
            newSize = GrowFile(path, size, exported: ctx.Configfs.BackstoresOf(path).Count > 0);
        }

        var backstores = ctx.Configfs.BackstoresOf(path);
        foreach (var name in backstores)
        {
            try
            {
                ctx.Configfs.SetDevSize(name, newSize);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new CliFailure($"backstore {name} refused the new size {newSize}: {e.Message} (the daemon's journal says why)");
            }
        }
        if (backstores.Count > 0)
        {
            var r = ctx.Targetcli.Run("saveconfig");
            if (!r.Ok) throw new CliFailure($"resized, but targetcli saveconfig failed: {Exporter.FirstLine(r.Output)}");
        }
        ctx.Out.WriteLine((backstores.Count == 0
            ? $"resized {path} to {newSize} bytes (not exported)"
            : $"resized {path} to {newSize} bytes; {backstores.Count} path(s) told: {string.Join(", ", backstores)}; configuration saved") + others);
    }

    /// <summary>An exported file is grown by the daemon when dev_size is written; one that is not, here (sparse).</summary>
    private static long GrowFile(string path, long size, bool exported)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new CliFailure($"volume '{path}' does not exist");
        if (size < info.Length)
            throw new CliFailure($"{path} has {info.Length} bytes; shrinking to {size} is refused: the initiators' data behind the new end would be lost");
        if (!exported && size > info.Length)
        {
            try
            {
                using var f = new FileStream(path, FileMode.Open, FileAccess.Write);
                f.SetLength(size);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new CliFailure($"cannot grow '{path}': {e.Message}");
            }
        }
        return size;
    }

    public static void Delete(CliContext ctx, string volume, bool yes, string? cephConf = null, string? clientId = null)
    {
        var image = Image(volume, cephConf, clientId);
        var path = Volumes.Canonical(volume);
        var backstores = ctx.Configfs.BackstoresOf(path);
        if (backstores.Count > 0)
            throw new CliFailure($"{path} is exported (backstores {string.Join(", ", backstores)}); unexport it first: tsvctl unexport --volume {image?.ToString() ?? path}");
        if (image is not null)
        {
            DeleteImage(ctx, image, yes);
            return;
        }
        var lvm = new Lvm(ctx.Commands);
        var lv = LogicalVolume.Parse(volume) ?? (Volumes.BlockDeviceSize(path) is not null ? lvm.OfDevice(path) : null);
        if (lv is null && Volumes.BlockDeviceSize(path) is not null)
            throw new CliFailure($"{path} is a block device but not an LVM logical volume; tsvctl deletes only files and LVs");
        if (lv is null && !File.Exists(path))
            throw new CliFailure($"volume '{path}' does not exist");
        string what = lv is { } named ? $"logical volume {named}" : path;
        Confirm(ctx, what, yes);
        if (lv is { } l)
        {
            lvm.Remove(l);
        }
        else
        {
            try
            {
                File.Delete(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new CliFailure($"cannot delete '{path}': {e.Message}");
            }
        }
        ctx.Out.WriteLine($"deleted {what}");
    }

    /// <summary>
    /// An image is deleted only when no host serves it: not this one (its backstores, checked
    /// before) and no other (a client that has it open). Its shared reservation table goes with it.
    /// </summary>
    private static void DeleteImage(CliContext ctx, RbdImage image, bool yes)
    {
        var rbd = new Rbd(ctx.Commands);
        if (rbd.Size(image) is null) throw new CliFailure($"RBD image {image.Pool}/{image.Image} does not exist");
        var watchers = rbd.Watchers(image);
        if (watchers.Count > 0)
            throw new CliFailure($"{image} is open on {watchers.Count} client(s) ({string.Join(", ", watchers)}): another host serves it; " +
                                 $"unexport it on every host first (tsvctl unexport --volume {image})");
        string what = $"RBD image {image.Pool}/{image.Image}";
        Confirm(ctx, what, yes);
        rbd.Remove(image);
        ctx.Out.WriteLine($"deleted {what} and its reservation table {image.Pool}/{image.TableObject}");
    }

    private static void Confirm(CliContext ctx, string what, bool yes)
    {
        if (yes) return;
        ctx.Out.Write($"delete {what} and every byte on it? type 'yes': ");
        ctx.Out.Flush();
        if (ctx.In.ReadLine()?.Trim() != "yes")
            throw new CliFailure($"not confirmed; {what} is kept (--yes deletes without asking)");
    }
}
