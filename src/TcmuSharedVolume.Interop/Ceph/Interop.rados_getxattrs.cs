using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>Starts iterating an object's xattrs; <paramref name="iterator"/> is released with <see cref="rados_getxattrs_end"/>.</summary>
    [LibraryImport(Library, EntryPoint = "rados_getxattrs", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_getxattrs(nint ioctx, string oid, nint* iterator);
}
