using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Cli;

/// <summary>
/// <c>tsvctl volume create | resize | delete</c> for sparse files and LVM logical volumes
/// (<c>lvm:VG/NAME</c>). A volume that is exported is grown through its backstores' dev_size, so
/// that the daemon tells every initiator (CAPACITY DATA HAS CHANGED); it is never deleted.
/// </summary>
public static class VolumeLifecycle
{
    public static void Create(CliContext ctx, string volume, long size, string? thinPool)
    {
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

    public static void Resize(CliContext ctx, string volume, long size)
    {
        var path = Volumes.Canonical(volume);
        var lvm = new Lvm(ctx.Commands);
        var rbd = Volumes.Rbd(path);
        var lv = rbd is not null ? null : LogicalVolume.Parse(volume) ?? (Volumes.BlockDeviceSize(path) is not null ? lvm.OfDevice(path) : null);
        long newSize;
        if (rbd is not null)
        {
            newSize = GrowRbd(ctx, path, rbd, size);
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
        ctx.Out.WriteLine(backstores.Count == 0
            ? $"resized {path} to {newSize} bytes (not exported)"
            : $"resized {path} to {newSize} bytes; {backstores.Count} path(s) told: {string.Join(", ", backstores)}; configuration saved");
    }

    /// <summary>
    /// An RBD image is grown by the daemon (rbd_resize) when the first of its backstores gets
    /// the new dev_size; the daemons of other hosts take the image's new size when theirs do.
    /// </summary>
    private static long GrowRbd(CliContext ctx, string path, RbdLocation rbd, long size)
    {
        long current = ctx.RbdImageSize(rbd);
        if (size < current)
            throw new CliFailure($"{rbd.Pool}/{rbd.Image} has {current} bytes; shrinking to {size} is refused: the initiators' data behind the new end would be lost");
        if (ctx.Configfs.BackstoresOf(path).Count == 0)
            throw new CliFailure($"{rbd.Pool}/{rbd.Image} is not exported on this host: grow it with rbd resize, or here once it is exported");
        return size;
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

    public static void Delete(CliContext ctx, string volume, bool yes)
    {
        var path = Volumes.Canonical(volume);
        // The image belongs to Ceph and may be served by other hosts.
        if (Volumes.Rbd(path) is { } rbd)
            throw new CliFailure($"{rbd.Pool}/{rbd.Image} is an RBD image, which tsvctl does not delete: unexport it on every host, then rbd rm");
        var backstores = ctx.Configfs.BackstoresOf(path);
        if (backstores.Count > 0)
            throw new CliFailure($"{path} is exported (backstores {string.Join(", ", backstores)}); unexport it first: tsvctl unexport --volume {path}");
        var lvm = new Lvm(ctx.Commands);
        var lv = LogicalVolume.Parse(volume) ?? (Volumes.BlockDeviceSize(path) is not null ? lvm.OfDevice(path) : null);
        if (lv is null && Volumes.BlockDeviceSize(path) is not null)
            throw new CliFailure($"{path} is a block device but not an LVM logical volume; tsvctl deletes only files and LVs");
        if (lv is null && !File.Exists(path))
            throw new CliFailure($"volume '{path}' does not exist");
        string what = lv is { } named ? $"logical volume {named}" : path;
        if (!yes)
        {
            ctx.Out.Write($"delete {what} and every byte on it? type 'yes': ");
            ctx.Out.Flush();
            if (ctx.In.ReadLine()?.Trim() != "yes")
                throw new CliFailure($"not confirmed; {what} is kept (--yes deletes without asking)");
        }
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
}
