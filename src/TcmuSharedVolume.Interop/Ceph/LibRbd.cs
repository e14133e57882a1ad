using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

/// <summary>
/// librbd (Ceph block device images), one declaration per function, each in its own file.
/// Calls return 0 (or a byte count) or a negative errno; they do not set errno.
/// </summary>
public static unsafe partial class LibRbd
{
    internal const string Library = "librbd.so.1";
}

/// <summary>librbd.h rbd_image_info_t (what rbd_stat fills).</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct RbdImageInfo
{
    public ulong Size;
    public ulong ObjectSize;
    public ulong NumObjs;
    public int Order;
    public fixed byte BlockNamePrefix[24]; // RBD_MAX_BLOCK_NAME_SIZE
    public long ParentPool;
    public fixed byte ParentName[96]; // RBD_MAX_IMAGE_NAME_SIZE
}
